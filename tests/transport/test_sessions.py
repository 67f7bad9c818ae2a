"""Legacy session ids carry 256 random bits and are only ever the gateway's own (THREATS A6)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import LEGACY_INITIALIZE, GatewayUrl, http_gateway, stdio_upstream, write_config

LEGACY = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUrl]:
    config = write_config(tmp_path_factory.mktemp("sessions"), {"alpha": stdio_upstream("alpha")})
    with http_gateway(config) as gateway_url:
        yield gateway_url


def _open(client: httpx.Client, url: GatewayUrl) -> str:
    response = client.post(url, json=LEGACY_INITIALIZE, headers={**LEGACY, **url.auth})
    assert response.status_code == 200
    return response.headers["mcp-session-id"]


def _list_tools(client: httpx.Client, url: GatewayUrl, session: str) -> httpx.Response:
    headers = {**LEGACY, **url.auth, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return client.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers)


def test_session_ids_are_long_random_and_printable(url: GatewayUrl) -> None:
    with httpx.Client(timeout=10) as client:
        ids = [_open(client, url) for _ in range(200)]
    assert len(set(ids)) == len(ids)
    for session in ids:
        assert len(session) >= 43  # 256 bits in URL-safe base64; uuid4 hex would be 32 characters
        assert all(0x21 <= ord(ch) <= 0x7E for ch in session)


def test_a_session_works_until_deleted(url: GatewayUrl) -> None:
    with httpx.Client(timeout=10) as client:
        session = _open(client, url)
        assert "alpha__echo" in _list_tools(client, url, session).text
        headers = {**url.auth, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
        assert client.delete(url, headers=headers).status_code < 300
        assert _list_tools(client, url, session).status_code == 404


@pytest.mark.parametrize("session", ["0123456789abcdef0123456789abcdef", "made-up", "unknown-session"])
def test_an_id_the_gateway_never_issued_is_unknown(url: GatewayUrl, session: str) -> None:
    with httpx.Client(timeout=10) as client:
        assert _list_tools(client, url, session).status_code == 404
