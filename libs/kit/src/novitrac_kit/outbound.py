"""Outbound HTTP to addresses customers give: refused unless public, and pinned to what was checked.

A URL a customer registers (a webhook endpoint, an agent's tool) must be ``https`` and resolve only
to public addresses (never loopback, private, link-local, shared, reserved or multicast ones), so
the platform cannot be aimed at its own network (SSRF). The ``development`` and ``test``
environments allow plain ``http`` and any address.

:func:`check_url` resolves the name once and returns the addresses it checked; the request must
then connect to one of those (:func:`pinned`, or :func:`target` which does both), not resolve the
name again, which could answer differently a moment later (DNS rebinding). TLS still presents and
verifies the name (``sni_hostname``), and the ``Host`` header still carries it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from novitrac_kit.config import Environment

LOCAL_ENVIRONMENTS: frozenset[Environment] = frozenset({"development", "test"})
"""Where plain ``http`` and local addresses are allowed, and nothing is pinned."""


class UnsafeUrl(ValueError):
    """The URL may not be called from the platform; the message says why."""


_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_NEVER_PUBLIC_V6 = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible, deprecated
    ipaddress.IPv6Network("fec0::/10"),  # site-local, deprecated
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and routes to, if it is such a form."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in network for network in _NAT64):
        # DNS64/NAT64 (IPv6-only clusters) translates the last 32 bits to IPv4.
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(address: str) -> bool:
    """Whether an IP address is a public unicast one, whatever form carries it.

    IPv6 forms that reach an IPv4 address (v4-mapped, 6to4, Teredo, NAT64) are judged by that
    address: ``64:ff9b::a9fe:a9fe`` is the cloud metadata service behind a NAT64 gateway.
    """
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _NEVER_PUBLIC_V6):
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return embedded.is_global and not embedded.is_multicast
    return ip.is_global and not ip.is_multicast


_RESOLVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="outbound-dns")
"""Customers' names resolve on threads of their own: a slow DNS server of theirs holds these,
never the event loop's default executor, which the platform's own connections need."""


async def _resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, each once.

    Tests replace this (``monkeypatch.setattr(outbound, "_resolve", ...)``) to play DNS.
    """
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        found = await loop.run_in_executor(
            _RESOLVER, functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        )
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeUrl(f"the host {host!r} does not resolve") from error
    return list(dict.fromkeys(str(info[4][0]) for info in found))


async def check_url(url: str, *, environment: Environment) -> list[str]:
    """Refuse a URL the platform may not call in this environment.

    Everywhere: a scheme other than ``https`` (``http`` too in development and test), no host, or
    credentials in the URL. Outside development and test: a host that does not resolve, or that
    resolves to any address that is not public (loopback, private, link-local, shared, reserved,
    multicast).

    Returns:
        The public addresses the host resolved to (none in development and test): connect to one
        of these, not to a second resolution, which could answer differently (DNS rebinding).

    Raises:
        UnsafeUrl: with the reason.
    """
    local = environment in LOCAL_ENVIRONMENTS
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl(f"malformed URL: {error}") from error
    schemes = ("https", "http") if local else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeUrl("the URL must use https")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("the URL must not carry credentials")
    if local:
        return []
    addresses = await _resolve(host, port or 443)
    if not all(is_public(address) for address in addresses):
        # Which addresses is not said: answers reach customers, and would map the network.
        raise UnsafeUrl(f"the host {host!r} resolves to a non-public address")
    return addresses


@dataclass(frozen=True)
class PinnedRequest:
    """A request to ``url`` that connects to an address already checked, not to the name.

    Attributes:
        url: the URL with its host replaced by the address.
        host: the ``Host`` header: the URL's own host (and port).
        sni_hostname: the name TLS presents and verifies the certificate against.
    """

    url: str
    host: str
    sni_hostname: str


def pinned(url: str, address: str) -> PinnedRequest:
    """``url`` aimed at ``address`` (one that :func:`check_url` returned for it)."""
    parts = urlsplit(url)
    name = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    return PinnedRequest(
        url=urlunsplit(parts._replace(netloc=netloc)),
        host=parts.netloc,
        sni_hostname=name,
    )


@dataclass(frozen=True)
class Target:
    """Where to send one request (httpx terms): the URL, extra headers, request extensions."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


async def target(url: str, *, environment: Environment) -> Target:
    """Check ``url`` (:func:`check_url`) and aim a request at the first address checked.

    In development and test the URL is used as it is (nothing resolved, nothing pinned).

    Raises:
        UnsafeUrl: with the reason.
    """
    addresses = await check_url(url, environment=environment)
    if environment in LOCAL_ENVIRONMENTS:
        return Target(url)
    aimed = pinned(url, addresses[0])
    return Target(
        aimed.url,
        headers={"host": aimed.host},
        extensions={"sni_hostname": aimed.sni_hostname},
    )


__all__ = [
    "LOCAL_ENVIRONMENTS",
    "PinnedRequest",
    "Target",
    "UnsafeUrl",
    "check_url",
    "is_public",
    "pinned",
    "target",
]


# Sending and reading.

UNCOMPRESSED = {"accept-encoding": "identity"}
"""Headers asking for a body as sent: read raw, a compressed one could inflate in memory."""


@functools.cache
def _tls() -> ssl.SSLContext:
    # Loading the CA certificates takes milliseconds: once per process, not per request.
    return httpx.create_ssl_context(trust_env=False)


def prepare_tls() -> None:
    """Load the TLS context now (at start-up), not on the first request's event-loop turn."""
    _tls()


def transport() -> httpx.AsyncHTTPTransport:
    """A transport for customers' addresses, on the process's one TLS context."""
    return httpx.AsyncHTTPTransport(verify=_tls(), trust_env=False)


def client(through: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client for one request to a customer's address (close it after).

    Its connections are its own: a pinned request names the address, not the host, in its URL,
    and httpx pools connections by address, so a shared pool could send a request for one name
    over a connection whose certificate was verified for another name at the same address.
    Redirects are not followed and no proxy is taken from the environment.

    Args:
        through: the transport (tests); by default :func:`transport`.
    """
    return httpx.AsyncClient(
        transport=through or transport(), follow_redirects=False, trust_env=False
    )


def compressed(response: httpx.Response) -> str | None:
    """The encoding a body came in although :data:`UNCOMPRESSED` was asked, or None."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    return None if encoding in ("", "identity") else encoding


async def read_raw(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of a streamed body as sent, and whether there was more."""
    kept = bytearray()
    async for chunk in response.aiter_raw():
        kept += chunk
        if len(kept) > limit:
            return bytes(kept[:limit]), True
    return bytes(kept), False
