"""Commands of the workbench: serve, and the access tokens it accepts (token add|list|remove)."""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import click

from archiver.errors import UserError
from archiver.cli.app import cli
from archiver.cli.common import _emit_json, _table, Context, pass_ctx

if TYPE_CHECKING:
    import uvicorn


def _bind(host: str, port: int) -> socket.socket:
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
        raise UserError(f"cannot listen on {host}:{port}: {why} (choose another with --port)") from None
    return sock


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs a token (`archiver token add`).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free one; the line printed at start says which).")
@pass_ctx
def serve(ctx: Context, host: str, port: int) -> None:
    """The workbench: search, captures with their screenshot, verify, downloads, and a JSON API, in a browser.
    Read-only unless a token allows submitting. Stops cleanly on ^C or SIGTERM."""
    from archiver.web import auth
    archive = ctx.archive
    if not archive.exists():
        raise UserError(f"no archive at {archive.path}; give --archive DIR (or ARCHIVER_HOME)")
    sock = _bind(host, port)   # a bad host or a taken port is said first: it is wrong whatever else is
    loopback = auth.is_loopback_host(host)
    if not loopback and not auth.load_tokens(archive.path):
        sock.close()
        raise UserError(f"refusing to serve on {host} without a token: anyone who reaches it could read the "
                        f"archive; make one with `archiver --archive {archive.path} token add NAME --role viewer`")
    import uvicorn
    from archiver.web.app import create_app
    app = create_app(archive, loopback)
    # proxy_headers off: the peer address is what the ledger records and what decides "local"; a header must not
    # be able to claim it.
    config = uvicorn.Config(app, proxy_headers=False, log_level="warning", access_log=False, server_header=False,
                            timeout_graceful_shutdown=5, lifespan="off")
    server = uvicorn.Server(config)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    click.echo(f"archiver workbench on http://{shown}:{bound_port}/ (archive {archive.path}; "
               f"{'local browser needs no token' if loopback else 'tokens required'}; ^C to stop)")
    _run_until_signalled(server, sock)
    click.echo("archiver: workbench stopped", err=True)


def _run_until_signalled(server: "uvicorn.Server", sock: socket.socket) -> None:
    """Serve in a thread; SIGINT or SIGTERM here asks it to finish what it serves and stop (uvicorn's own handlers
    would re-raise the signal after stopping, and the command would end as killed rather than done)."""
    import signal
    import threading
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="workbench")

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
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
