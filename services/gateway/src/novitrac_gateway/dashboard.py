"""The web dashboard's static files (``web/``), served at ``/`` by the gateway.

The dashboard is a single-page app without a build step: ``index.html``, ``app.css`` and the
ES modules under ``src/``. It routes by history (``/calls/<id>``, ``/billing/top-up``: the paths
the platform's emails and notifications link to), so a ``GET`` of any other page-like path that
is not the API's falls back to ``index.html``. What is refused with a 404: a path with a ``.`` or
``..`` segment, or one that resolves outside the directory (``/src/../../etc/passwd``, encoded
or not), hidden files, files of a type not listed here, and anything under the API's own prefixes
(``/v1/``, ``/webhooks/``, ``/media/``, ``/.well-known/``) or ``/src/`` that has no file.

Every answer carries the gateway's security headers with the dashboard's own CSP (``'self'``
scripts, styles and connections, nothing inline). The page, the modules and the stylesheet are
``no-cache`` (revalidated at each load, so a deploy never mixes versions); images may be kept a
minute; every file has an ETag for a cheap revalidation (304).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from novitrac_gateway.edge import (
    DASHBOARD_CSP,
    REQUEST_ID,
    SECURITY_HEADERS,
    Headers,
    header,
    request_id,
    send_bytes,
    send_error,
)
from novitrac_gateway.state import gateway_of

logger = logging.getLogger(__name__)

INDEX = "index.html"
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".mjs": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".json": b"application/json",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".woff2": b"font/woff2",
    ".txt": b"text/plain; charset=utf-8",
}
# Served from the top of the directory; everything else only from below src/ (tests/ and the
# README stay private).
TOP_LEVEL = frozenset({INDEX, "app.css", "favicon.ico", "favicon.svg", "manifest.json"})
ASSETS = "src"
# Prefixes that belong to the API or the providers: a missing path there is a 404, never a page.
NOT_PAGES = ("/v1/", "/webhooks/", "/media/", "/.well-known/", f"/{ASSETS}/")
NOT_PAGES_EXACT = frozenset({"/v1", "/webhooks", "/media", "/.well-known"})
INDEX_CACHE = b"no-cache"
ASSET_CACHE = b"public, max-age=60"
# The page, its modules and its stylesheet are revalidated on every load (a 304 when unchanged):
# kept for a minute, an old module could meet a new app.js after a deploy and break the page.
REVALIDATED = frozenset({".html", ".js", ".mjs", ".css", ".json"})
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_SECURITY = [(key, value) for key, value in SECURITY_HEADERS if key != b"content-security-policy"]


@dataclass(frozen=True)
class File:
    """A file of the dashboard, as last read."""

    body: bytes
    etag: bytes
    content_type: bytes
    cache_control: bytes


class Dashboard:
    """The ASGI app for the paths no other gateway route took.

    ``GET`` and ``HEAD`` are answered from the dashboard's directory (or its ``index.html`` for a
    page); everything else, and everything when there is no dashboard, goes to ``fallback`` (the
    proxy: its 404s and its CORS preflights).

    Args:
        fallback: the app that answers what the dashboard does not.
    """

    def __init__(self, fallback: ASGIApp) -> None:
        self.fallback = fallback
        self._files: dict[Path, tuple[int, int, File]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.fallback(scope, receive, send)
            return
        settings = gateway_of(scope["app"]).settings
        root = dashboard_root(settings.dashboard_dir)
        if root is None:
            await self.fallback(scope, receive, send)
            return
        headers: Headers = scope["headers"]
        own: Headers = [
            (REQUEST_ID, request_id(header(headers, REQUEST_ID))),
            *_SECURITY,
            (b"content-security-policy", csp(header(headers, b"host"))),
        ]
        path: str = scope["path"]
        target = resolve(root, path)
        if target is None:
            await send_error(send, 404, "not_found", "no such file", own)
            return
        file = self._read(target)
        if file is None:
            await send_error(send, 404, "not_found", "no such file", own)
            return
        own.extend([(b"cache-control", file.cache_control), (b"etag", file.etag)])
        if _matches(header(headers, b"if-none-match"), file.etag):
            await send({"type": "http.response.start", "status": 304, "headers": own})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["method"] == "HEAD":
            start = [
                (b"content-type", file.content_type),
                (b"content-length", str(len(file.body)).encode()),
                *own,
            ]
            await send({"type": "http.response.start", "status": 200, "headers": start})
            await send({"type": "http.response.body", "body": b""})
            return
        await send_bytes(send, 200, file.body, file.content_type, own)

    def _read(self, target: Path) -> File | None:
        """The file at ``target``, read again only when its size or modification time changed."""
        try:
            stat = target.stat()
        except OSError:
            return None
        cached = self._files.get(target)
        if cached is not None and cached[0] == stat.st_mtime_ns and cached[1] == stat.st_size:
            return cached[2]
        try:
            body = target.read_bytes()
        except OSError:
            return None
        file = File(
            body=body,
            etag=b'"%x-%x"' % (stat.st_mtime_ns, stat.st_size),
            content_type=CONTENT_TYPES[target.suffix],
            cache_control=INDEX_CACHE if target.suffix in REVALIDATED else ASSET_CACHE,
        )
        self._files[target] = (stat.st_mtime_ns, stat.st_size, file)
        return file


def resolve(root: Path, path: str) -> Path | None:
    """The file ``path`` names under ``root`` (``index.html`` for a page), or None for a 404."""
    segments = path.split("/")[1:]
    if any(segment in (".", "..") or "\\" in segment or "\0" in segment for segment in segments):
        return None
    if path in ("/", f"/{INDEX}"):
        return root / INDEX
    relative = "/".join(segments)
    is_asset = len(segments) == 1 and relative in TOP_LEVEL
    is_asset = is_asset or (len(segments) > 1 and segments[0] == ASSETS)
    if is_asset:
        if any(segment.startswith(".") or not segment for segment in segments):
            return None
        candidate = (root / relative).resolve()
        if not candidate.is_relative_to(root) or candidate.suffix not in CONTENT_TYPES:
            return None
        return candidate if candidate.is_file() else None
    if _is_page(path):
        return root / INDEX
    return None


def _is_page(path: str) -> bool:
    """Whether ``path`` may be one of the app's pages: not the API's, and not a file's name."""
    if path in NOT_PAGES_EXACT or path.startswith(NOT_PAGES):
        return False
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return "." not in last


@functools.lru_cache(maxsize=8)
def dashboard_root(setting: Path | None) -> Path | None:
    """The dashboard's directory, resolved: the setting, or ``web/`` above the package."""
    if setting is not None:
        root = setting.resolve()
        if (root / INDEX).is_file():
            return root
        logger.warning("dashboard.missing", extra={"directory": str(root)})
        return None
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "web"
        if (candidate / INDEX).is_file():
            return candidate
    return None


def csp(host: bytes | None) -> bytes:
    """The dashboard's CSP, allowing WebSockets to the host the page was loaded from."""
    if host is None:
        return DASHBOARD_CSP
    try:
        text = host.decode("ascii")
    except UnicodeDecodeError:
        return DASHBOARD_CSP
    if not _HOST.match(text):
        return DASHBOARD_CSP
    return DASHBOARD_CSP + f" ws://{text} wss://{text}".encode()


def _matches(if_none_match: bytes | None, etag: bytes) -> bool:
    if if_none_match is None:
        return False
    tags = [tag.strip() for tag in if_none_match.split(b",")]
    return etag in tags or b"*" in tags or b"W/" + etag in tags
