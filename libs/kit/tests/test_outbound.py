"""Customer URLs: refused unless public (outside development and test), pinned once checked."""

from __future__ import annotations

import pytest

from novitrac_kit import outbound
from novitrac_kit.outbound import UnsafeUrl, check_url, pinned, target


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://93.184.216.34/hook", "https"),
        ("ftp://93.184.216.34/hook", "https"),
        ("https:///hook", "no host"),
        ("https://user:pw@93.184.216.34/hook", "credentials"),
        ("https://127.0.0.1/hook", "non-public"),
        ("https://10.1.2.3/hook", "non-public"),
        ("https://169.254.169.254/latest", "non-public"),
        ("https://100.64.0.1/hook", "non-public"),
        ("https://[::1]/hook", "non-public"),
        ("https://[::ffff:192.168.0.1]/hook", "non-public"),
        ("https://224.0.0.1/hook", "non-public"),
        # IPv6 forms that reach a private IPv4 address: NAT64 (IPv6-only clusters), 6to4,
        # Teredo, the deprecated v4-compatible and site-local ranges.
        ("https://[64:ff9b::a9fe:a9fe]/latest", "non-public"),
        ("https://[64:ff9b::a00:1]/hook", "non-public"),
        ("https://[64:ff9b:1::a00:1]/hook", "non-public"),
        ("https://[2002:7f00:1::]/hook", "non-public"),
        ("https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook", "non-public"),
        ("https://[::7f00:1]/hook", "non-public"),
        ("https://[fec0::1]/hook", "non-public"),
        ("https://93.184.216.34:99999/hook", "malformed"),
    ],
)
async def test_production_refuses_what_is_not_https_to_a_public_address(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrl, match=why):
        await check_url(url, environment="production")


async def test_a_name_resolving_to_any_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]

    monkeypatch.setattr(outbound, "_resolve", resolve)
    with pytest.raises(UnsafeUrl, match="non-public") as refused:
        await check_url("https://hooks.example.com/x", environment="production")
    assert "10.0.0.5" not in str(refused.value), "internal addresses are not told to customers"


def test_public_addresses_in_any_form_pass() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822"):
        assert outbound.is_public(address), address


async def test_development_and_test_allow_http_and_local_addresses_and_resolve_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise AssertionError("nothing is resolved locally")

    monkeypatch.setattr(outbound, "_resolve", resolve)
    for environment in ("development", "test"):
        assert await check_url("http://127.0.0.1:9/hook", environment=environment) == []
        plain = await target("http://localhost:9/hook", environment=environment)
        assert (plain.url, plain.headers, plain.extensions) == ("http://localhost:9/hook", {}, {})
    with pytest.raises(UnsafeUrl, match="https"):
        await check_url("ftp://127.0.0.1/hook", environment="test")


async def test_the_request_goes_to_the_address_checked_with_the_name_kept_for_tls_and_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lookups: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append((host, port))
        return ["93.184.216.34", "93.184.216.35"]

    monkeypatch.setattr(outbound, "_resolve", resolve)
    aimed = await target("https://hooks.example.com:8443/x?a=1", environment="production")

    assert lookups == [("hooks.example.com", 8443)]
    assert aimed.url == "https://93.184.216.34:8443/x?a=1"
    assert aimed.headers == {"host": "hooks.example.com:8443"}
    assert aimed.extensions == {"sni_hostname": "hooks.example.com"}


def test_pinning_an_ipv6_address_brackets_it() -> None:
    aimed = pinned("https://hooks.example.com/x", "2606:2800:220:1::1")
    assert (aimed.url, aimed.host, aimed.sni_hostname) == (
        "https://[2606:2800:220:1::1]/x",
        "hooks.example.com",
        "hooks.example.com",
    )


async def test_clients_to_customers_have_their_own_connections_on_one_tls_context() -> None:
    first, second = outbound.transport(), outbound.transport()
    try:
        contexts = {id(transport._pool._ssl_context) for transport in (first, second)}
        assert len(contexts) == 1, "the CA certificates are loaded once"
        assert first._pool is not second._pool
    finally:
        await first.aclose()
        await second.aclose()
