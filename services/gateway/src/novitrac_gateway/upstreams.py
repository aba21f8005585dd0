"""One pooled, keep-alive HTTP/1.1 client per upstream service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx


@dataclass(frozen=True)
class Upstream:
    """A service behind the gateway.

    Attributes:
        name: the service's name.
        client: its pooled client, with the service's base URL.
        scheme: the base URL's scheme.
        host: its host.
        port: its port.
        base_path: its path, prefixed to every forwarded path (usually empty).
    """

    name: str
    client: httpx.AsyncClient
    scheme: str
    host: str
    port: int
    base_path: bytes

    def url(self, raw_path: bytes, query: bytes) -> httpx.URL:
        """The upstream URL of a request, its path and query kept byte for byte."""
        target = self.base_path + raw_path
        if query:
            target += b"?" + query
        return httpx.URL(scheme=self.scheme, host=self.host, port=self.port, raw_path=target)


class Upstreams:
    """The clients of every upstream service; close with :meth:`aclose`.

    Args:
        urls: each service's base URL, by name.
        connect_timeout: seconds to connect (and to wait for a pooled connection).
        timeout: seconds for any one read or write.
        max_connections: connections kept per service at most.
        keepalive_expiry: seconds an idle connection is kept.
    """

    def __init__(
        self,
        urls: dict[str, str],
        *,
        connect_timeout: float,
        timeout: float,
        max_connections: int,
        keepalive_expiry: float,
    ) -> None:
        self._upstreams: dict[str, Upstream] = {}
        for name, url in urls.items():
            parts = urlsplit(url)
            scheme = parts.scheme or "http"
            client = httpx.AsyncClient(
                base_url=url,
                timeout=httpx.Timeout(timeout, connect=connect_timeout, pool=connect_timeout),
                limits=httpx.Limits(
                    max_connections=max_connections,
                    max_keepalive_connections=max_connections,
                    keepalive_expiry=keepalive_expiry,
                ),
                follow_redirects=False,
                trust_env=False,
            )
            self._upstreams[name] = Upstream(
                name=name,
                client=client,
                scheme=scheme,
                host=parts.hostname or "127.0.0.1",
                port=parts.port or (443 if scheme == "https" else 80),
                base_path=parts.path.rstrip("/").encode(),
            )

    def __getitem__(self, name: str) -> Upstream:
        return self._upstreams[name]

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self._upstreams.values())

    async def aclose(self) -> None:
        """Close every client."""
        for upstream in self._upstreams.values():
            await upstream.client.aclose()
