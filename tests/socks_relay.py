"""A small SOCKS5 server for tests that forwards everything to an upstream HTTP proxy.

It lets the tests check the ``socks5://`` / ``socks5h://`` form of ``network.proxy`` (the way investigators
route through Tor) against the loopback fixture world (``scripts/demo_server.py``), whose forward proxy
answers for the real platform host names. The relay never connects to a requested address itself:

* RFC 1928, version 5 only; authentication method 0x00 (none) only — a client offering nothing else gets
  0xFF; the CONNECT command only (others: reply 0x07); address types IPv4 (0x01), domain name (0x03) and
  IPv6 (0x04) (others: reply 0x08).
* Port 443: the relay opens a TCP connection to the upstream proxy, sends ``CONNECT host:443 HTTP/1.1``,
  waits for a 200, replies SOCKS success and then copies bytes both ways (TLS stays end to end between the
  client and whatever the upstream proxy terminates it with).
* Any other port: the fixture world's proxy accepts ``CONNECT`` to port 443 only (502 otherwise), but it
  serves absolute-form ``http://`` requests. So the relay replies SOCKS success at once and rewrites each
  origin-form HTTP/1.x request line the client sends (``GET /path HTTP/1.1``) to absolute form
  (``GET http://host[:port]/path HTTP/1.1``) before passing it to the upstream proxy on one persistent
  connection; responses are copied back unchanged. Request bodies with ``Content-Length`` are passed
  through; ``Transfer-Encoding: chunked`` request bodies are not supported (the connection is closed).
  What the upstream proxy refuses reaches the client as its HTTP error (e.g. 502), not as a SOCKS error.
* If the upstream proxy cannot be reached the reply is 0x01 (general failure) or 0x05 (connection
  refused); a non-200 answer to CONNECT gives 0x04 (host unreachable) for 502/503/504, 0x02 (connection
  not allowed) otherwise.

Each requested (host, port) is appended to ``requests`` *as the client sent it*: a domain name stays a
name, so a test can tell that the client let the proxy resolve it (socks5h semantics) rather than sending
a locally resolved address. Standard library only; daemon threads, socket timeouts everywhere, and
``stop()`` returns within about a second::

    with socks_relay.start(site.proxy_url) as relay:
        env["ARCHIVER_NETWORK_PROXY"] = relay.url          # socks5://127.0.0.1:PORT
        ...
        assert ("www.levantledger.example", 443) in relay.requests
"""
from __future__ import annotations

import ipaddress
import selectors
import socket
import struct
import threading
import types
from typing import NamedTuple
from urllib.parse import urlsplit

SOCKS_VERSION = 5
METHOD_NO_AUTH = 0x00
METHOD_NONE_ACCEPTABLE = 0xFF
CMD_CONNECT = 0x01
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 0x01, 0x03, 0x04

REP_SUCCEEDED = 0x00
REP_GENERAL_FAILURE = 0x01
REP_NOT_ALLOWED = 0x02
REP_HOST_UNREACHABLE = 0x04
REP_CONNECTION_REFUSED = 0x05
REP_COMMAND_NOT_SUPPORTED = 0x07
REP_ADDRESS_TYPE_NOT_SUPPORTED = 0x08

HANDSHAKE_TIMEOUT = 10.0   # SOCKS negotiation and the upstream CONNECT exchange
IDLE_TIMEOUT = 60.0        # a relayed connection with no traffic either way for this long is closed
MAX_HEAD_BYTES = 65536     # bound on an HTTP response head from the upstream / request head from the client
CHUNK = 65536
ACCEPT_POLL = 0.1          # how often the accept loop looks at the stop flag


class SocksRequest(NamedTuple):
    """One CONNECT request as the client sent it: ``host`` is a name for address type 0x03, else an IP."""

    host: str
    port: int


class _Refused(Exception):
    """Negotiation ended with a SOCKS error reply (already sent) or a hang-up."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise _Refused("client hung up during negotiation")
        data += chunk
    return data


def _reply(sock: socket.socket, code: int) -> None:
    # BND.ADDR/BND.PORT: 0.0.0.0:0 — clients connecting through CONNECT do not use them.
    sock.sendall(struct.pack("!BBBB4sH", SOCKS_VERSION, code, 0, ATYP_IPV4, b"\0\0\0\0", 0))


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_address(host: str) -> bool:
    """True when ``host`` is an IP address literal (i.e. not a name left for the proxy to resolve)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _RequestRewriter:
    """Client-to-upstream byte filter for plain HTTP: origin-form request lines become absolute-form."""

    def __init__(self, host: str, port: int) -> None:
        name = f"[{host}]" if ":" in host else host
        self.prefix = f"http://{name}" + ("" if port == 80 else f":{port}")
        self.buffer = b""
        self.body_left = 0

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        out = b""
        while self.buffer:
            if self.body_left:
                take = self.buffer[:self.body_left]
                self.buffer = self.buffer[len(take):]
                self.body_left -= len(take)
                out += take
                continue
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    raise ValueError("request head too long")
                break
            head, self.buffer = self.buffer[:end + 4], self.buffer[end + 4:]
            out += self._rewrite(head)
        return out

    def _rewrite(self, head: bytes) -> bytes:
        line, _, rest = head.partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.x request line: {line[:100]!r}")
        if parts[1].startswith(b"/"):
            parts[1] = self.prefix.encode("ascii") + parts[1]
        for header in rest.split(b"\r\n"):
            name, _, value = header.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self.body_left = int(value.strip())
            elif name == b"transfer-encoding" and value.strip().lower() != b"identity":
                raise ValueError("chunked request bodies are not supported")
        return b" ".join(parts) + b"\r\n" + rest


class SocksRelay:
    """A running relay; use as a context manager or call :meth:`stop`."""

    def __init__(self, upstream_proxy_url: str, host: str = "127.0.0.1", port: int = 0) -> None:
        parts = urlsplit(upstream_proxy_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream proxy must be http://host:port, not {upstream_proxy_url!r}")
        self.upstream: tuple[str, int] = (parts.hostname, parts.port or 80)
        self._lock = threading.Lock()
        self._requests: list[SocksRequest] = []
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(ACCEPT_POLL)
        self.host, self.port = self._listener.getsockname()[:2]
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        self.url: str = f"socks5://{url_host}:{self.port}"
        self._accepting = threading.Thread(target=self._accept_loop, name=f"socks-relay-{self.port}", daemon=True)
        self._accepting.start()

    @property
    def socks5h_url(self) -> str:
        return "socks5h://" + self.url[len("socks5://"):]

    @property
    def requests(self) -> list[SocksRequest]:
        """Every CONNECT request received, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def hosts(self) -> set[str]:
        return {r.host for r in self.requests}

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    # ---- lifecycle ---------------------------------------------------------

    def stop(self) -> None:
        """Stop accepting, close every open connection (which ends their threads) and return."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._accepting.join(timeout=1)
        self._listener.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
            threads = list(self._threads)
        for sock in sockets:
            _close(sock)
        for thread in threads:
            thread.join(timeout=0.2)

    def __enter__(self) -> SocksRelay:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: types.TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SocksRelay {self.url} -> http://{_authority(*self.upstream)}>"

    # ---- plumbing ----------------------------------------------------------

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stopping.is_set():
                return False
            self._open.add(sock)
            return True

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        _close(sock)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if not self._track(client):
                _close(client)
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True,
                                      name=f"socks-relay-{self.port}-conn")
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(HANDSHAKE_TIMEOUT)
            host, port = self._negotiate(client)
            with self._lock:
                self._requests.append(SocksRequest(host, port))
            upstream, early = self._open_upstream(client, host, port)
            if port == 443:
                rewriter = None
            else:
                rewriter = _RequestRewriter(host, port)
            _reply(client, REP_SUCCEEDED)
            if early:
                client.sendall(early)
            self._pump(client, upstream, rewriter)
        except (_Refused, OSError, ValueError):
            pass
        finally:
            if upstream is not None:
                self._untrack(upstream)
            self._untrack(client)

    def _negotiate(self, client: socket.socket) -> tuple[str, int]:
        version, n_methods = _recv_exact(client, 2)
        if version != SOCKS_VERSION:
            raise _Refused(f"SOCKS version {version}")
        methods = _recv_exact(client, n_methods)
        if METHOD_NO_AUTH not in methods:
            client.sendall(bytes([SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]))
            raise _Refused("no acceptable authentication method")
        client.sendall(bytes([SOCKS_VERSION, METHOD_NO_AUTH]))
        version, command, _, atyp = _recv_exact(client, 4)
        if version != SOCKS_VERSION:
            raise _Refused(f"SOCKS version {version}")
        if atyp == ATYP_IPV4:
            host = socket.inet_ntop(socket.AF_INET, _recv_exact(client, 4))
        elif atyp == ATYP_IPV6:
            host = socket.inet_ntop(socket.AF_INET6, _recv_exact(client, 16))
        elif atyp == ATYP_DOMAIN:
            host = _recv_exact(client, _recv_exact(client, 1)[0]).decode("ascii", errors="replace")
        else:
            _reply(client, REP_ADDRESS_TYPE_NOT_SUPPORTED)
            raise _Refused(f"address type {atyp}")
        (port,) = struct.unpack("!H", _recv_exact(client, 2))
        if command != CMD_CONNECT:
            _reply(client, REP_COMMAND_NOT_SUPPORTED)
            raise _Refused(f"command {command}")
        return host, port

    def _open_upstream(self, client: socket.socket, host: str, port: int) -> tuple[socket.socket, bytes]:
        """A connection to the upstream proxy (tunnelled with CONNECT for port 443) and any bytes read past
        the CONNECT answer; sends the SOCKS error reply itself when that fails."""
        try:
            upstream = socket.create_connection(self.upstream, timeout=HANDSHAKE_TIMEOUT)
        except ConnectionRefusedError:
            _reply(client, REP_CONNECTION_REFUSED)
            raise
        except OSError:
            _reply(client, REP_GENERAL_FAILURE)
            raise
        if not self._track(upstream):
            _close(upstream)
            raise _Refused("stopping")
        try:
            return upstream, self._tunnel(client, upstream, host, port)
        except BaseException:
            self._untrack(upstream)
            raise

    def _tunnel(self, client: socket.socket, upstream: socket.socket, host: str, port: int) -> bytes:
        """For port 443, CONNECT through the upstream proxy; the bytes read past its answer."""
        if port != 443:
            return b""
        authority = _authority(host, port)
        try:
            upstream.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode("ascii"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = upstream.recv(CHUNK)
                if not chunk or len(head) > MAX_HEAD_BYTES:
                    raise _Refused("upstream proxy hung up during CONNECT")
                head += chunk
        except (OSError, UnicodeEncodeError, _Refused):
            _reply(client, REP_GENERAL_FAILURE)
            raise
        head, _, early = head.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split()
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
        if status != 200:
            _reply(client, REP_HOST_UNREACHABLE if status in (502, 503, 504) else REP_NOT_ALLOWED)
            raise _Refused(f"upstream proxy answered CONNECT with {status}")
        return early

    def _pump(self, client: socket.socket, upstream: socket.socket, rewriter: _RequestRewriter | None) -> None:
        """Copy bytes both ways until both sides have closed, or nothing moved for IDLE_TIMEOUT seconds."""
        client.settimeout(IDLE_TIMEOUT)
        upstream.settimeout(IDLE_TIMEOUT)
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ)
            sel.register(upstream, selectors.EVENT_READ)
            while sel.get_map() and not self._stopping.is_set():
                ready = sel.select(timeout=IDLE_TIMEOUT)
                if not ready:
                    return  # idle
                for key, _ in ready:
                    src = key.fileobj
                    assert isinstance(src, socket.socket)
                    dst = peer[src]
                    data = src.recv(CHUNK)
                    if not data:
                        # Half-close: pass the end of stream on, keep reading the other way.
                        sel.unregister(src)
                        try:
                            dst.shutdown(socket.SHUT_WR)
                        except OSError:
                            return
                        continue
                    if src is client and rewriter is not None:
                        data = rewriter.feed(data)
                    if data:
                        dst.sendall(data)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def start(upstream_proxy_url: str, host: str = "127.0.0.1", port: int = 0) -> SocksRelay:
    """Start a relay in daemon threads, forwarding to ``upstream_proxy_url``; returns once listening."""
    return SocksRelay(upstream_proxy_url, host, port)
