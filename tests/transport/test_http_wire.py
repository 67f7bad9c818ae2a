"""The HTTP front on the raw wire: Host/Origin checks, media types, sizes, sessions and shapes
(THREATS A10, C16, C17, E1-E4, E8, E19)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from tests.support import (
    LEGACY_INITIALIZE,
    GatewayUrl,
    authenticated,
    http_gateway,
    stdio_upstream,
    wait_until,
    write_config,
)

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUrl]:
    directory = tmp_path_factory.mktemp("http-wire")
    config = write_config(directory, {"alpha": stdio_upstream("alpha")}, gateway={"max_request_kb": 64})
    with http_gateway(config) as url:
        yield url


def _post(url: GatewayUrl, **kwargs: Any) -> httpx.Response:
    """POST as the gateway's test principal (the front authenticates every request)."""
    return httpx.post(url, **{**kwargs, "headers": {**kwargs.get("headers", {}), **url.auth}})


def _modern(method: str, request_id: int = 1, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": META}}


def _modern_headers(method: str, name: str | None = None) -> dict[str, str]:
    headers = {
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
    }
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


def test_well_formed_modern_request_is_served(gateway_url: GatewayUrl) -> None:
    response = _post(gateway_url, json=_modern("tools/list"), headers=_modern_headers("tools/list"))
    assert response.status_code == 200
    names = {tool["name"] for tool in response.json()["result"]["tools"]}
    assert "alpha__echo" in names


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://attacker.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Host": "attacker.example"}, 421),
        ({"Host": "attacker.example:8765", "Origin": "http://attacker.example:8765"}, 421),
    ],
)
def test_dns_rebinding_and_foreign_origins_are_refused(
    gateway_url: str, headers: dict[str, str], status: int
) -> None:
    response = _post(
        gateway_url, json=_modern("tools/list"), headers={**_modern_headers("tools/list"), **headers}
    )
    assert response.status_code == status


def test_no_origin_is_fine(gateway_url: GatewayUrl) -> None:
    response = _post(gateway_url, json=_modern("tools/list"), headers=_modern_headers("tools/list"))
    assert response.status_code == 200


def test_inspector_style_get_cannot_spawn_anything(gateway_url: GatewayUrl) -> None:
    # CVE-2025-49596's shape: a GET with a command in the query string must never start a process.
    url = (
        gateway_url.replace("/mcp", "/sse")
        + "?transportType=stdio&command=touch&args=%2Ftmp%2Fmcpwarden-pwned"
    )
    response = httpx.get(url, headers={"Origin": "http://attacker.example"})
    assert response.status_code in {403, 404}
    assert not Path("/tmp/mcpwarden-pwned").exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list"', -32700),
        (b"null", -32600),
        (b"[]", -32600),
        (json.dumps([_modern("tools/list")]).encode(), -32600),
        (b'{"jsonrpc":"2.0","id":null,"method":"tools/list"}', -32600),
        (b'{"jsonrpc":"2.0","id":[1],"method":"tools/list"}', -32600),
    ],
)
def test_malformed_bodies_get_400_and_a_jsonrpc_error(
    gateway_url: GatewayUrl, body: bytes, code: int
) -> None:
    response = _post(gateway_url, content=body, headers=_modern_headers("tools/list"))
    assert response.status_code == 400
    error = response.json()
    assert error["error"]["code"] == code and error["id"] is None


def test_wrong_media_types(gateway_url: GatewayUrl) -> None:
    text = _post(gateway_url, content=b"{}", headers={"Accept": ACCEPT, "Content-Type": "text/plain"})
    assert text.status_code == 415
    no_accept = _post(
        gateway_url,
        json=_modern("tools/list"),
        headers={"Content-Type": "application/json", "Accept": "text/html"},
    )
    assert no_accept.status_code == 406


def test_oversized_body_is_refused_before_parsing(gateway_url: GatewayUrl) -> None:
    response = _post(gateway_url, content=b"a" * (200 * 1024), headers=_modern_headers("tools/list"))
    assert response.status_code == 413


def test_header_mismatch_is_refused(gateway_url: GatewayUrl) -> None:
    body = _modern("tools/call", name="alpha__echo", arguments={"text": "x"})
    response = _post(gateway_url, json=body, headers=_modern_headers("tools/call", "alpha__add"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020


def test_legacy_sessions(gateway_url: GatewayUrl) -> None:
    legacy = {"Accept": ACCEPT, "Content-Type": "application/json"}
    unknown = _post(
        gateway_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**legacy, "Mcp-Session-Id": "no-such-session", "MCP-Protocol-Version": "2025-11-25"},
    )
    assert unknown.status_code == 404
    missing = _post(
        gateway_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**legacy, "MCP-Protocol-Version": "2025-11-25"},
    )
    assert missing.status_code == 400

    init = _post(
        gateway_url,
        json=LEGACY_INITIALIZE,
        headers=legacy,
    )
    assert init.status_code == 200
    session_id = init.headers["mcp-session-id"]
    assert len(session_id) >= 22 and all(0x21 <= ord(ch) <= 0x7E for ch in session_id)


@pytest.mark.anyio
async def test_two_clients_with_the_same_ids_get_only_their_own_answers(gateway_url: GatewayUrl) -> None:
    """Both clients number their requests from the same start; every answer reaches its owner."""
    results: dict[str, list[str]] = {"a": [], "b": []}

    async def run(label: str) -> None:
        async with Client(authenticated(gateway_url)) as client:
            for index in range(10):
                result = await client.call_tool("alpha__echo", {"text": f"{label}{index}"})
                results[label].append(result.content[0].text)  # type: ignore[union-attr]

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "a")
            tg.start_soon(run, "b")
    assert results == {"a": [f"a{i}" for i in range(10)], "b": [f"b{i}" for i in range(10)]}


def test_healthz_reports_upstreams(gateway_url: GatewayUrl) -> None:
    health = httpx.get(gateway_url.replace("/mcp", "/healthz")).json()
    assert health["status"] == "ok"
    assert health["upstreams"]["alpha"]["ready"] is True


def test_a_client_that_hangs_up_cancels_its_call_on_the_fast_lane(tmp_path: Path) -> None:
    """The call a client gave up on stops holding its in-flight place (and its upstream request):
    with one place per client, the next call is served long before the abandoned one would end."""
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, gateway={"max_in_flight": 1})
    with http_gateway(config) as url:
        host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
        body = json.dumps(_modern("tools/call", name="alpha__slow", arguments={"seconds": 60})).encode()
        headers = {**_modern_headers("tools/call", "alpha__slow"), **url.auth, "Content-Length": len(body)}
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n{head}\r\n".encode()
        echo = _modern("tools/call", 2, name="alpha__echo", arguments={"text": "next"})
        answers: list[dict[str, Any]] = []

        def next_call_answered() -> bool:
            response = _post(url, json=echo, headers=_modern_headers("tools/call", "alpha__echo"))
            answers.append(response.json())
            return "result" in answers[-1]

        with socket.create_connection((host, int(port)), timeout=10) as abandoned:
            abandoned.sendall(request + body)
            # While the slow call holds the one place, the next is refused.
            wait_until(lambda: not next_call_answered(), 10, "the slow call to take the place")
        wait_until(next_call_answered, 20, "the abandoned call to give up its place")
    assert answers[0]["error"]["data"]["reason"] == "too-many-in-flight"
    assert answers[-1]["result"]["content"][0]["text"] == "next"
