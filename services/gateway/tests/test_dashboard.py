"""The web dashboard's static files, served at ``/`` by the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from novitrac_gateway.dashboard import dashboard_root
from novitrac_kit.testing.tokens import TokenIssuer

from .conftest import UNLIMITED, Platform, PlatformFactory, start_platform

ASYNC = pytest.mark.asyncio(loop_scope="module")

INDEX = b"<!doctype html><title>Novitrac</title><script type=module src=/src/app.js></script>"
APP_JS = b"import { h } from './dom.js';\nexport const answer = 42;\n"
SECRET = b"not for the web"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dashboard directory, next to a file no request may reach."""
    base = tmp_path_factory.mktemp("site")
    (base / "secret.txt").write_bytes(SECRET)
    root = base / "web"
    (root / "src" / "views").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "index.html").write_bytes(INDEX)
    (root / "app.css").write_bytes(b"body { margin: 0; }\n")
    (root / "README.md").write_bytes(b"# private\n")
    (root / "src" / "app.js").write_bytes(APP_JS)
    (root / "src" / "views" / "calls.js").write_bytes(b"export function list() {}\n")
    (root / "src" / ".hidden.js").write_bytes(b"hidden\n")
    (root / "src" / "notes.exe").write_bytes(b"MZ")
    (root / "tests" / "api.test.js").write_bytes(b"test\n")
    (root / "src" / "escape.js").symlink_to(base / "secret.txt")
    return root


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(web: Path) -> AsyncIterator[Platform]:
    async with start_platform(TokenIssuer(), dashboard_dir=str(web), **UNLIMITED) as started:
        yield started


async def raw_get(platform: Platform, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (no client normalises its dots), its status and body."""
    address = urlsplit(platform.url)
    assert address.hostname is not None
    assert address.port is not None
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        request = f"GET {target} HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@ASYNC
class TestServing:
    @pytest.mark.parametrize("path", ["/", "/index.html"])
    async def test_index(self, platform: Platform, path: str) -> None:
        response = await platform.client.get(path)
        assert response.status_code == 200
        assert response.content == INDEX
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["etag"]
        assert response.headers["x-request-id"]

    async def test_module_is_javascript(self, platform: Platform) -> None:
        response = await platform.client.get("/src/app.js")
        assert response.status_code == 200
        assert response.content == APP_JS
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        # Revalidated at each load: after a deploy, no old module meets a new app.js.
        assert response.headers["cache-control"] == "no-cache"

    async def test_nested_module_and_stylesheet(self, platform: Platform) -> None:
        response = await platform.client.get("/src/views/calls.js")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        response = await platform.client.get("/app.css")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/css; charset=utf-8"

    async def test_unchanged_file_is_304(self, platform: Platform) -> None:
        first = await platform.client.get("/src/app.js")
        etag = first.headers["etag"]
        again = await platform.client.get("/src/app.js", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == first.headers["etag"]
        other = await platform.client.get("/src/app.js", headers={"If-None-Match": '"other"'})
        assert other.status_code == 200

    async def test_changed_file_is_served_again(self, platform: Platform, web: Path) -> None:
        path = web / "src" / "changing.js"
        path.write_bytes(b"export const v = 1;\n")
        first = await platform.client.get("/src/changing.js")
        path.write_bytes(b"export const v = 22;\n")
        second = await platform.client.get("/src/changing.js")
        assert second.content == b"export const v = 22;\n"
        assert second.headers["etag"] != first.headers["etag"]

    async def test_head(self, platform: Platform) -> None:
        response = await platform.client.head("/src/app.js")
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["content-length"] == str(len(APP_JS))
        missing = await platform.client.head("/src/missing.js")
        assert missing.status_code == 404
        assert missing.content == b""
        page = await platform.client.head("/calls")
        assert page.status_code == 200
        assert page.headers["content-length"] == str(len(INDEX))


@ASYNC
class TestHeaders:
    async def test_strict_csp_for_the_dashboard(self, platform: Platform) -> None:
        response = await platform.client.get("/")
        csp = response.headers["content-security-policy"]
        directives = dict(
            [*part.strip().split(" ", 1), ""][:2] for part in csp.split(";") if part.strip()
        )
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        host = urlsplit(platform.url).netloc
        assert directives["connect-src"] == f"'self' ws://{host} wss://{host}"
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert response.headers.get_list("content-security-policy") == [csp]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"

    async def test_odd_host_is_left_out_of_the_csp(self, platform: Platform) -> None:
        response = await platform.client.get("/", headers={"Host": "evil.example; script-src *"})
        assert response.status_code == 200
        assert response.headers["content-security-policy"].endswith("connect-src 'self'")


@ASYNC
class TestPages:
    @pytest.mark.parametrize(
        "path",
        ["/calls", "/calls/4b4c5a1e-1111-4c4c-9c9c-000000000001", "/billing/top-up", "/settings/"],
    )
    async def test_app_pages_fall_back_to_index(self, platform: Platform, path: str) -> None:
        response = await platform.client.get(path, params={"checkout": "success"})
        assert response.status_code == 200
        assert response.content == INDEX
        assert response.headers["cache-control"] == "no-cache"

    @pytest.mark.parametrize(
        "path",
        [
            "/src/missing.js",
            "/src/views/",
            "/favicon.ico",
            "/logo.png",
            "/README.md",
            "/tests/api.test.js",
            "/src/.hidden.js",
            "/src/notes.exe",
            "/src/escape.js",
            "/v1/nothing-here",
            "/v1",
            "/webhooks/unknown",
            "/.well-known/other",
        ],
    )
    async def test_not_a_file_nor_a_page_is_404(self, platform: Platform, path: str) -> None:
        response = await platform.client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == "not_found"


@ASYNC
class TestTraversal:
    @pytest.mark.parametrize(
        "target",
        [
            "/src/../../etc/passwd",
            "/src/../../secret.txt",
            "/../secret.txt",
            "/src/%2e%2e/%2e%2e/secret.txt",
            "/src/%2E%2E%2F%2E%2E%2Fsecret.txt",
            "/%2e%2e/secret.txt",
            "/src/..%2f..%2fsecret.txt",
            "/src/..%5c..%5csecret.txt",
            "/src/./app.js",
            "/src/app.js%00.css",
        ],
    )
    async def test_escaping_the_directory_is_404(self, platform: Platform, target: str) -> None:
        status, body = await raw_get(platform, target)
        assert status in (400, 404)
        assert SECRET not in body
        assert b"root:" not in body
        assert INDEX not in body


@ASYNC
class TestApiUnaffected:
    async def test_service_routes_still_proxied(self, platform: Platform) -> None:
        response = await platform.client.get("/v1/calls", headers=platform.auth(platform.token()))
        assert response.status_code == 200
        assert response.json()["service"] == "telephony"
        assert "script-src" not in response.headers["content-security-policy"]

    async def test_api_needs_its_credential(self, platform: Platform) -> None:
        response = await platform.client.get("/v1/agents")
        assert response.status_code == 401

    async def test_gateway_routes(self, platform: Platform) -> None:
        assert (await platform.client.get("/healthz")).status_code == 200
        document = await platform.client.get("/v1/openapi.json")
        assert document.headers["content-type"] == "application/json"
        docs = await platform.client.get("/docs")
        assert docs.status_code == 200
        assert b"swagger" in docs.content.lower()
        assert docs.content != INDEX

    async def test_other_methods_are_not_the_dashboards(self, platform: Platform) -> None:
        response = await platform.client.post("/calls", json={})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert response.headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )


class TestSetting:
    @ASYNC
    async def test_no_dashboard_without_index(
        self, make_platform: PlatformFactory, tmp_path: Path
    ) -> None:
        async with make_platform(dashboard_dir=str(tmp_path), **UNLIMITED) as platform:
            response = await platform.client.get("/")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
            response = await platform.client.get("/calls")
            assert response.status_code == 404

    def test_default_is_the_checkouts_web_directory(self) -> None:
        root = dashboard_root(None)
        assert root is not None
        assert root == Path(__file__).resolve().parents[3] / "web"
        assert (root / "index.html").is_file()
