"""One pooled, keep-alive HTTP/1.1 client session per upstream service.

aiohttp rather than httpx: the proxy sends every request the gateway does not answer itself
through these sessions, and aiohttp's connection pool and HTTP parser cost a fraction of httpx's
per request. The sessions add nothing of their own to a request (no User-Agent, Accept,
Accept-Encoding or Content-Type, no cookies), never follow redirects, and hand response bodies back
exactly as the service sent them (no decompression).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp import hdrs
from yarl import URL

# Headers aiohttp would otherwise add to every request; the proxy forwards the client's own.
SKIP_AUTO_HEADERS = (hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE)


@dataclass(frozen=True)
class Upstream:
    """A service behind the gateway.

    Attributes:
        name: the service's name.
        session: its pooled client session.
        origin: the base URL's scheme, host and port (``http://127.0.0.1:8001``).
        base_path: its path, prefixed to every forwarded path (usually empty).
    """

    name: str
    session: aiohttp.ClientSession
    origin: str
    base_path: bytes

    def url(self, raw_path: bytes, query: bytes) -> URL:
        """The upstream URL of a request, its path and query kept byte for byte."""
        target = self.base_path + raw_path
        if query:
            target += b"?" + query
        return URL(self.origin + _target_text(target), encoded=True)


class Upstreams:
    """The client sessions of every upstream service; close with :meth:`aclose`.

    Build inside the running event loop.

    Args:
        urls: each service's base URL, by name.
        connect_timeout: seconds to connect (and to wait for a pooled connection).
        timeout: seconds to wait for the service's answer, and for each read of it after.
        max_connections: connections kept per service at most.
        keepalive_expiry: seconds an idle connection is kept (0: none is kept).
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
            host = parts.hostname or "127.0.0.1"
            port = parts.port or (443 if scheme == "https" else 80)
            if ":" in host:
                host = f"[{host}]"
            if keepalive_expiry > 0:
                connector = aiohttp.TCPConnector(
                    limit=max_connections, limit_per_host=0, keepalive_timeout=keepalive_expiry
                )
            else:
                connector = aiohttp.TCPConnector(
                    limit=max_connections, limit_per_host=0, force_close=True
                )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=connect_timeout, sock_read=timeout
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=SKIP_AUTO_HEADERS,
                auto_decompress=False,
                trust_env=False,
            )
            self._upstreams[name] = Upstream(
                name=name,
                session=session,
                origin=f"{scheme}://{host}:{port}",
                base_path=parts.path.rstrip("/").encode(),
            )

    def __getitem__(self, name: str) -> Upstream:
        return self._upstreams[name]

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self._upstreams.values())

    async def aclose(self) -> None:
        """Close every session."""
        for upstream in self._upstreams.values():
            await upstream.session.close()


def _target_text(target: bytes) -> str:
    """A request target as text that aiohttp writes back as the same bytes.

    aiohttp writes the request line as UTF-8, so UTF-8 (and ASCII) round-trips exactly; any
    other byte outside ASCII, which a client should have percent-encoded, is percent-encoded.
    """
    try:
        return target.decode()
    except UnicodeDecodeError:
        return "".join(chr(byte) if byte < 0x80 else f"%{byte:02X}" for byte in target)
