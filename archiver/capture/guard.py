"""The private-network guard: with ``network.allow_private = false`` no fetcher connects to a loopback,
private, link-local, multicast or otherwise non-public address (design.md principle 6), checked on the
address actually connected to — after DNS, and after every redirect — not only on the URL asked for.

Each fetcher is guarded where it connects:

- httpx (direct fetches, tweets' syndication answers, short links, liveness checks): ``GuardedBackend``, an
  httpcore network backend that resolves the name itself, checks every address and connects to a checked
  address, so there is no second lookup that DNS rebinding could answer differently. A request hook refuses
  targets spelled as private addresses before anything is sent (through a proxy it is the only check: the
  proxy resolves names).
- yt-dlp (in-process, urllib or requests, possibly in threads): an audit hook on ``socket.connect``, armed
  while a download runs (``armed``), sees the peer address of every connection. video.py adds checks of
  every URL yt-dlp opens and of the formats it hands to ffmpeg, which connects by itself.
- Chromium (another process): ``BrowserGate`` checks each request's host while it is paused before being
  sent, and the address each response came from before it is recorded (browser.py).

``network.allow_addresses`` lists ranges allowed all the same (a newsroom intranet). The configured
``network.proxy`` is always allowed: through it, names are the proxy's to resolve.
"""
from __future__ import annotations

import asyncio
import errno
import socket
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import httpcore
import httpx

from archiver.config import Settings
from archiver.urls import (BlockedAddress, IPNetwork, check_addresses, literal_addresses, parse_networks,
                           refused_kind, resolve)

PROXY_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}
URL_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class Policy:
    """Which addresses a capture may connect to."""

    allow_private: bool
    allowed: tuple[IPNetwork, ...] = ()
    proxy: tuple[str, int] | None = None   # network.proxy's host and port: always allowed

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        net = settings["network"]
        proxy = None
        if net["proxy"].strip():
            parts = urlsplit(net["proxy"].strip())
            if parts.hostname:
                proxy = (parts.hostname.lower(), parts.port or PROXY_DEFAULT_PORTS.get(parts.scheme.lower(), 80))
        return cls(bool(net["allow_private"]), parse_networks(tuple(net["allow_addresses"])), proxy)

    @property
    def open(self) -> bool:
        """Nothing to check: private targets are allowed."""
        return self.allow_private

    def check(self, host: str, addresses: Iterable[str], what: str = "target") -> None:
        """Raise BlockedAddress when any of ``host``'s addresses is refused."""
        check_addresses(host, list(addresses), self.allow_private, self.allowed, what)

    def refusal(self, host: str, address: str, what: str = "target") -> str | None:
        """The message for a refused address, or None when it may be connected to."""
        kind = refused_kind(address, self.allow_private, self.allowed)
        return None if kind is None else BlockedAddress(host, address, kind, what=what).message

    def is_proxy(self, host: str, port: int) -> bool:
        return self.proxy is not None and (host.strip("[]").lower(), port) == self.proxy

    @cached_property
    def proxy_addresses(self) -> frozenset[str]:
        """The addresses the proxy's host name stands for (a connection to one of them is to the proxy)."""
        if self.proxy is None:
            return frozenset()
        try:
            return frozenset(resolve(*self.proxy))
        except OSError:
            return frozenset()

    def is_proxy_peer(self, address: str, port: int | None = None) -> bool:
        return (self.proxy is not None and address.strip("[]") in self.proxy_addresses
                and (port is None or port == self.proxy[1]))

    def check_url_literal(self, url: str) -> None:
        """Refuse a URL whose host is itself a private address (or a localhost name), without any lookup."""
        if self.open:
            return
        parts = urlsplit(url)
        host = parts.hostname or ""
        addresses = literal_addresses(host)
        if addresses:
            self.check(host, addresses)

    def check_url(self, url: str) -> None:
        """Refuse a URL whose host resolves to a refused address (blocking). Through a proxy only literal
        addresses are checked; a name that does not resolve is left for the fetch to fail on."""
        if self.open:
            return
        if self.proxy is not None:
            self.check_url_literal(url)
            return
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            addresses = resolve(host, parts.port or URL_DEFAULT_PORTS.get(parts.scheme.lower(), 80))
        except OSError:
            return
        self.check(host, addresses)


async def resolve_async(host: str, port: int) -> list[str]:
    """``urls.resolve`` without blocking the event loop."""
    literal = literal_addresses(host)
    if literal is not None:
        return literal
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# --- httpx -------------------------------------------------------------------------------------------------


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then connects to a checked address: the address connected to is the one checked."""

    def __init__(self, policy: Policy, inner: httpcore.AsyncNetworkBackend):
        self.policy = policy
        self.inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        options = {"timeout": timeout, "local_address": local_address, "socket_options": socket_options}
        if self.policy.is_proxy(host, port):
            return await self.inner.connect_tcp(host, port, **options)
        try:
            addresses = await asyncio.wait_for(resolve_async(host, port), timeout)
        except asyncio.TimeoutError:
            raise httpcore.ConnectTimeout(f"no answer resolving {host} within {timeout:g} s") from None
        except OSError as exc:  # the message keeps the resolver's words, which classify it as "dns"
            raise httpcore.ConnectError(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from exc
        self.policy.check(host, addresses)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, **options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None  # resolve_async never returns an empty list
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return await self.inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardNotInstalled(RuntimeError):
    """httpx changed shape and the backend cannot be put in place: fetching unguarded is not an option."""


def guard_httpx(client: httpx.AsyncClient, policy: Policy) -> httpx.AsyncClient:
    """Put ``GuardedBackend`` under every transport of ``client`` (its own and any proxy mounts taken from
    the environment) and refuse literal private targets in a request hook. Returns the client."""
    if policy.open:
        return client

    async def refuse_literal_target(request: httpx.Request) -> None:
        policy.check_url_literal(str(request.url))

    hooks = client.event_hooks
    hooks["request"] = [*hooks.get("request", []), refuse_literal_target]
    client.event_hooks = hooks
    # httpx offers no public way to choose the network backend of the transports it builds (proxy and
    # trust_env handling included), so it is swapped in on the connection pools, checked, failing closed.
    transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is None or not isinstance(getattr(pool, "_network_backend", None), httpcore.AsyncNetworkBackend):
            raise GuardNotInstalled(f"cannot guard {type(transport).__name__}: httpx/httpcore internals changed")
        pool._network_backend = GuardedBackend(policy, pool._network_backend)
    return client


# --- in-process sockets (yt-dlp) ---------------------------------------------------------------------------


class ConnectRefused(PermissionError):
    """What a refused ``socket.connect`` raises inside the library that called it (an OSError, so that it
    fails like any unreachable address); the BlockedAddress itself is kept in ``armed``'s list."""


@dataclass
class _Arming:
    policy: Policy
    refusals: list[BlockedAddress] = field(default_factory=list)


# Audit hooks cannot be removed, so there is one, installed on first use, and it does nothing unless a
# capture in this process has armed it.
_armings: list[_Arming] = []
_armings_lock = threading.Lock()
_hook_installed = False


@contextmanager
def armed(policy: Policy) -> Iterator[list[BlockedAddress]]:
    """While inside, every TCP connect in this process (any thread) is checked against ``policy``. Yields the
    list the refusals are added to, so that a caller can tell "blocked" from other failures of the library
    that made the connection."""
    global _hook_installed
    arming = _Arming(policy)
    if policy.open:
        yield arming.refusals
        return
    with _armings_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True
        _armings.append(arming)
    try:
        yield arming.refusals
    finally:
        with _armings_lock:
            _armings.remove(arming)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _armings:  # kept cheap: this runs for every audited event
        return
    sock, address = args
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return
    arming = _armings[-1]
    host, port = str(address[0]), int(address[1])
    if arming.policy.is_proxy_peer(host, port) or arming.policy.is_proxy(host, port):
        return
    try:
        # The address as given to connect(): an IP after the caller's own lookup; a name is resolved here.
        addresses = resolve(host, port)
    except OSError:
        return  # connect() itself will fail on a name that does not resolve
    try:
        arming.policy.check(host, addresses)
    except BlockedAddress as exc:
        arming.refusals.append(exc)
        raise ConnectRefused(errno.EACCES, exc.message) from None


# --- Chromium ----------------------------------------------------------------------------------------------


class BrowserGate:
    """For one browser capture: may a request be sent, may a response be recorded."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self._verdicts: dict[tuple[str, int], str | None] = {}   # a page asks for the same hosts many times

    async def refusal(self, url: str) -> str | None:
        """Why a request to ``url`` must not be sent, or None. Through a proxy only literal addresses are
        checked (names are the proxy's to resolve); a name that does not resolve here is let through, and
        the address its response comes from is checked by ``peer_refusal``."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in URL_DEFAULT_PORTS or not parts.hostname:
            return None
        key = (parts.hostname, parts.port or URL_DEFAULT_PORTS[scheme])
        if key not in self._verdicts:
            self._verdicts[key] = await self._verdict(*key)
        return self._verdicts[key]

    async def _verdict(self, host: str, port: int) -> str | None:
        if self.policy.proxy is not None:
            addresses = literal_addresses(host) or []
        else:
            try:
                addresses = await resolve_async(host, port)
            except OSError:
                return None
        try:
            self.policy.check(host, addresses)
        except BlockedAddress as exc:
            return exc.message
        return None

    def peer_refusal(self, url: str, remote_ip: str | None) -> str | None:
        """Why a response that came from ``remote_ip`` must not be recorded as evidence, or None."""
        if not remote_ip or self.policy.is_proxy_peer(remote_ip):
            return None
        return self.policy.refusal(urlsplit(url).hostname or remote_ip, remote_ip.strip("[]"),
                                   what="response from")


def browser_gate(settings: Settings) -> BrowserGate | None:
    """The gate for one browser capture; None when private targets are allowed (nothing to pause for)."""
    policy = Policy.from_settings(settings)
    return None if policy.open else BrowserGate(policy)
