"""A loopback HTTP server that misbehaves on purpose, byte by byte, for tests/test_hostile.py.

Raw sockets, not http.server: the point is to send exactly what a hostile or broken server sends —
headers trickled a byte a second, a Content-Length of 10 GB, a connection reset in the middle of a body,
1 MB of headers, a gzip body that inflates to gigabytes (generated as it is sent, never held in memory).

Every connection runs in its own thread. ``stop()`` closes the listening socket and every open connection
and joins every thread, and says which (if any) did not end, so a test session can insist that none leak.

Paths (``GET`` only; anything else gets a 404):

=============================  ==========================================================================
/good?…                        a small, well-formed HTML page (any query: one URL per test)
/slowloris/headers             status line, then header bytes at one per second, forever
/slowloris/body                complete headers (no Content-Length), then body bytes at one per second
/gzip-bomb                     Content-Encoding: gzip, ~10 MB on the wire that inflates to 10 GiB of zeros
/redirect-loop/a, /b           302 to each other, forever
/huge-length/fast              Content-Length: 10 GB, then HTML-ish bytes at full speed
/huge-length/stall             Content-Length: 10 GB, 1,000 bytes, then silence
/huge-headers                  1 MiB of response headers before a small body
/big-headers                   50 kB of response headers (for a lowered network.max_header_bytes)
/reset-mid-body                Content-Length: 100,000, 20,000 bytes, then a TCP reset
/invalid-utf8                  HTML declared UTF-8 holding bytes that are not UTF-8 (``INVALID_UTF8_BODY``)
/never-loads/subresource       a page whose image never answers (not even a status line)
/never-loads/document          a page whose body starts (title, text) and then never ends
=============================  ==========================================================================
"""
from __future__ import annotations

import select
import socket
import struct
import threading
import time
import zlib
from typing import Callable
from urllib.parse import urlsplit

DRIP_INTERVAL = 1.0            # seconds between trickled bytes
HUGE_LENGTH = 10 * 1000 ** 3   # the Content-Length of the /huge-length paths: 10 GB
HEADER_BYTES = 1 << 20         # size of the header block of /huge-headers
BIG_HEADER_BYTES = 50 * 1000   # /big-headers: under every built-in ceiling, over a lowered max_header_bytes
BOMB_BLOCK = 1 << 20           # zeros per compressed block of the gzip bomb
BOMB_BLOCKS = 10 * 1024        # blocks: 10 GiB inflated
SOCKET_TIMEOUT = 20.0          # a client that stops reading cannot hold a serving thread longer than this

GOOD_TITLE = "A good page after a hostile one"
INVALID_UTF8_BODY = (
    b"<!doctype html><html><head><meta charset=\"utf-8\"><title>Invalid UTF-8 \xff\xfe here</title></head>"
    b"<body><p>Lone continuation \x80\x81, overlong \xc0\xaf, truncated \xe2\x82, surrogate \xed\xa0\x80.</p>"
    b"<p>And valid text after it: caf\xc3\xa9 \xe2\x82\xac.</p></body></html>\n"
)
STALL_BODY = (b"<!doctype html><title>Stalled</title><p>" + b"s" * 1000)[:1000]
RESET_BODY = (b"<!doctype html><title>Reset</title><p>" + b"r" * 20000)[:20000]
NEVER_ENDS_HEAD = (b"<!doctype html><html><head><title>A document that never ends</title></head><body>"
                   b"<p>The first part of the document arrived; the rest never will.</p>\n")


class ClientGone(Exception):
    """The client closed the connection, or the server is stopping."""


# -- the gzip bomb ---------------------------------------------------------------------------------------

def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_zeros(crc: int, length: int) -> int:
    """CRC-32 of ``length`` zero bytes appended to data whose CRC-32 is ``crc`` (zlib's crc32_combine),
    so the bomb's trailer is right without hashing 10 GiB."""
    # CRC-32 pre- and post-inverts its register; between those, a zero byte is a linear operator on it.
    register = crc ^ 0xFFFFFFFF
    odd = [0xEDB88320] + [1 << n for n in range(31)]   # the operator for one zero bit
    even = _gf2_square(odd)                              # two zero bits
    odd = _gf2_square(even)                              # four zero bits
    while length > 0:
        even = _gf2_square(odd)                          # first pass: one zero byte
        if length & 1:
            register = _gf2_times(even, register)
        length >>= 1
        if not length:
            break
        odd = _gf2_square(even)
        if length & 1:
            register = _gf2_times(odd, register)
        length >>= 1
    return register ^ 0xFFFFFFFF


class GzipBomb:
    """A valid gzip stream of BOMB_BLOCKS × BOMB_BLOCK zero bytes, served from three small pieces.

    After a full flush deflate starts from a clean, byte-aligned state, so compressing the same block again
    gives the same bytes: the stream is ``head + block * (n-1) + tail``.
    """

    def __init__(self, blocks: int = BOMB_BLOCKS):
        zeros = bytes(BOMB_BLOCK)
        deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
        self.head = deflater.compress(zeros) + deflater.flush(zlib.Z_FULL_FLUSH)
        self.block = deflater.compress(zeros) + deflater.flush(zlib.Z_FULL_FLUSH)
        if deflater.compress(zeros) + deflater.flush(zlib.Z_FULL_FLUSH) != self.block:
            raise RuntimeError("deflate output is not repeatable; cannot build the bomb")
        self.blocks = blocks
        self.inflated = blocks * BOMB_BLOCK
        crc = crc32_zeros(0, self.inflated)
        self.tail = b"\x03\x00" + struct.pack("<II", crc, self.inflated & 0xFFFFFFFF)  # empty final block
        self.length = len(self.head) + len(self.block) * (blocks - 1) + len(self.tail)

    def chunks(self):
        yield self.head
        batch = self.block * 64
        left = self.blocks - 1
        while left:
            n = min(64, left)
            yield batch if n == 64 else self.block * n
            left -= n
        yield self.tail


# -- the server ------------------------------------------------------------------------------------------

class HostileServer:
    def __init__(self, host: str = "127.0.0.1"):
        self._listener = socket.create_server((host, 0))
        # accept() blocked in another thread is not woken by close() on Linux; a short timeout lets the
        # accepting thread notice stop().
        self._listener.settimeout(0.2)
        self.host, self.port = self._listener.getsockname()[:2]
        self.url = f"http://{host}:{self.port}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.hits: dict[str, int] = {}
        self.bomb = GzipBomb()
        self._routes: dict[str, Callable[[socket.socket], None]] = {
            "/good": self._good,
            "/slowloris/headers": self._slowloris_headers,
            "/slowloris/body": self._slowloris_body,
            "/gzip-bomb": self._gzip_bomb,
            "/redirect-loop/a": lambda c: self._redirect(c, "/redirect-loop/b"),
            "/redirect-loop/b": lambda c: self._redirect(c, "/redirect-loop/a"),
            "/huge-length/fast": self._huge_fast,
            "/huge-length/stall": self._huge_stall,
            "/huge-headers": lambda c: self._huge_headers(c, HEADER_BYTES),
            "/big-headers": lambda c: self._huge_headers(c, BIG_HEADER_BYTES),
            "/reset-mid-body": self._reset_mid_body,
            "/invalid-utf8": self._invalid_utf8,
            "/never-loads/subresource": self._never_loads_subresource,
            "/never-loads/hanging.png": self._hanging_image,
            "/never-loads/document": self._never_loads_document,
        }
        self._acceptor = threading.Thread(target=self._accept_loop, name="hostile-accept", daemon=True)

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> "HostileServer":
        self._acceptor.start()
        return self

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stop serving, end every connection, join every thread; returns the names of threads still alive."""
        self._stop.set()
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            _shut(conn)
        end = time.monotonic() + timeout
        self._acceptor.join(max(0.0, end - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))
        return [t.name for t in [self._acceptor, *threads] if t.is_alive()]

    def live_threads(self) -> int:
        with self._lock:
            return sum(1 for t in self._threads if t.is_alive())

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # the listener was closed by stop()
            conn.settimeout(SOCKET_TIMEOUT)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                      name=f"hostile-conn-{len(self._threads)}")
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self._conns.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            path = _read_request_path(conn)
            if path is None:
                return
            with self._lock:
                self.hits[path] = self.hits.get(path, 0) + 1
            self._routes.get(path, self._not_found)(conn)
        except (ClientGone, OSError):
            pass  # the client left (or we are stopping): nothing more to send
        finally:
            with self._lock:
                self._conns.discard(conn)
            _shut(conn)

    # -- sending ----------------------------------------------------------------------------------------

    def _send(self, conn: socket.socket, data: bytes) -> None:
        if self._stop.is_set():
            raise ClientGone("server stopping")
        conn.sendall(data)

    def _drip(self, conn: socket.socket, data: bytes, forever: bool = True) -> None:
        """Send one byte per DRIP_INTERVAL, cycling through ``data``, until the client or the server gives up."""
        i = 0
        while forever or i < len(data):
            if self._stop.wait(DRIP_INTERVAL):
                raise ClientGone("server stopping")
            self._send(conn, data[i % len(data):i % len(data) + 1])
            i += 1

    def _stall(self, conn: socket.socket) -> None:
        """Hold the connection open and silent (the client's limits must act) until the client goes away or
        the server stops."""
        while not self._stop.is_set():
            readable, _, _ = select.select([conn], [], [], 0.25)
            if readable and not conn.recv(4096):
                raise ClientGone("client closed the connection")
        raise ClientGone("server stopping")

    def _head(self, conn: socket.socket, status: str, headers: list[tuple[str, str]]) -> None:
        lines = [f"HTTP/1.1 {status}"] + [f"{name}: {value}" for name, value in headers]
        self._send(conn, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _page(self, conn: socket.socket, body: bytes, status: str = "200 OK",
              content_type: str = "text/html; charset=utf-8") -> None:
        self._head(conn, status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                  ("Connection", "close")])
        self._send(conn, body)

    # -- routes -----------------------------------------------------------------------------------------

    def _not_found(self, conn: socket.socket) -> None:
        self._page(conn, b"<!doctype html><title>Not found</title><p>No such path.</p>", "404 Not Found")

    def _good(self, conn: socket.socket) -> None:
        self._page(conn, (f"<!doctype html><html><head><title>{GOOD_TITLE}</title></head><body>"
                          f"<h1>{GOOD_TITLE}</h1><p>Nothing unusual here.</p></body></html>").encode())

    def _slowloris_headers(self, conn: socket.socket) -> None:
        self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n")
        self._drip(conn, b"X-Drip: " + b"a" * 64 + b"\r\n")  # never reaches the blank line

    def _slowloris_body(self, conn: socket.socket) -> None:
        # No Content-Length: the body would end only when the connection closes, which it never does.
        self._head(conn, "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Connection", "close")])
        self._send(conn, b"<!doctype html><title>Slowloris</title><p>")
        self._drip(conn, b"drip ")

    def _gzip_bomb(self, conn: socket.socket) -> None:
        self._head(conn, "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", "gzip"),
                                    ("Content-Length", str(self.bomb.length)), ("Connection", "close")])
        for chunk in self.bomb.chunks():
            self._send(conn, chunk)

    def _redirect(self, conn: socket.socket, location: str) -> None:
        self._head(conn, "302 Found", [("Location", location), ("Content-Length", "0"), ("Connection", "close")])

    def _huge_fast(self, conn: socket.socket) -> None:
        self._head(conn, "200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                    ("Content-Length", str(HUGE_LENGTH)), ("Connection", "close")])
        chunk = (b"<!doctype html><title>Ten gigabytes</title>" + b"<p>" + b"x" * 1000 + b"</p>\n") * 64
        sent = 0
        while sent < HUGE_LENGTH:
            piece = chunk[: HUGE_LENGTH - sent]
            self._send(conn, piece)
            sent += len(piece)

    def _huge_stall(self, conn: socket.socket) -> None:
        self._head(conn, "200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                    ("Content-Length", str(HUGE_LENGTH)), ("Connection", "close")])
        self._send(conn, STALL_BODY)
        self._stall(conn)

    def _huge_headers(self, conn: socket.socket, size: int) -> None:
        value = "h" * 1000
        headers = [("Content-Type", "text/html; charset=utf-8")]
        headers += [(f"X-Pad-{i}", value) for i in range(size // (len(value) + 12))]
        body = b"<!doctype html><title>Huge headers</title><p>After a megabyte of headers.</p>"
        headers += [("Content-Length", str(len(body))), ("Connection", "close")]
        self._head(conn, "200 OK", headers)
        self._send(conn, body)

    def _reset_mid_body(self, conn: socket.socket) -> None:
        self._head(conn, "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "100000"),
                                    ("Connection", "close")])
        self._send(conn, RESET_BODY)
        time.sleep(0.2)  # let the client read what was sent before the reset discards it
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def _invalid_utf8(self, conn: socket.socket) -> None:
        self._page(conn, INVALID_UTF8_BODY)

    def _never_loads_subresource(self, conn: socket.socket) -> None:
        self._page(conn, b"<!doctype html><html><head><title>A page that never finishes loading</title></head>"
                         b"<body><p>The document is complete; its image never is.</p>"
                         b"<img src=\"/never-loads/hanging.png\" width=\"100\" height=\"100\"></body></html>")

    def _hanging_image(self, conn: socket.socket) -> None:
        self._stall(conn)  # not even a status line: only the page's load timeout ends the wait

    def _never_loads_document(self, conn: socket.socket) -> None:
        self._head(conn, "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Connection", "close")])
        self._send(conn, NEVER_ENDS_HEAD)
        self._stall(conn)


def _read_request_path(conn: socket.socket) -> str | None:
    """The path of the request on ``conn`` (the request head is read whole, at most 64 KiB)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > 65536:
            return None
        data += chunk
    request_line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3:
        return None
    return urlsplit(parts[1]).path


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


def start() -> HostileServer:
    return HostileServer().start()


if __name__ == "__main__":  # serve by hand: python tests/hostile_server.py
    server = start()
    print(f"hostile server at {server.url}  (Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("leaked threads:", server.stop())
