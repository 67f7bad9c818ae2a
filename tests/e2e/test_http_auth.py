"""Authentication end to end: a real `mcpwarden serve`, a real `mcp.Client`, a JWKS and an upstream
on 127.0.0.1 that records the Authorization header it receives (THREATS A4, A6, A11, A13, D*)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from tests.auth.tokens import ISSUER, Issuer
from tests.support import (
    FIXTURES,
    LEGACY_INITIALIZE,
    MCPWARDEN,
    PYTHON,
    GatewayUrl,
    LoopbackServer,
    QuietHandler,
    authenticated,
    background_process,
    free_port,
    http_gateway,
    mint_key,
    wait_until,
    write_config,
)

UPSTREAM_SECRET = "Bearer upstream-own-credential-7f3a"
ACCEPT = "application/json, text/event-stream"
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


class KeyServer(LoopbackServer):
    """A JWKS endpoint (or an attacker's) on 127.0.0.1 that counts its hits and can be made to fail."""

    def __init__(self, document: dict[str, Any] | None) -> None:
        self.document = document
        self.status = 200
        self.hits = 0
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                self.reply_json(outer.status, outer.document or {})

        self.serve(Handler)


@dataclass
class World:
    url: GatewayUrl
    issuer: Issuer
    record: Path
    log: Path
    config: Path
    upstream_url: str
    attacker: KeyServer
    jwks: KeyServer
    tokens_sent: list[str] = field(default_factory=list)

    def upstream_requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]

    def upstream_calls(self) -> list[dict[str, Any]]:
        return [r for r in self.upstream_requests() if r["method"] == "tools/call"]


@pytest.fixture(scope="module")
def recording_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("recorder")
    record = directory / "requests.jsonl"
    record.touch()
    port = free_port()
    args = [PYTHON, str(FIXTURES / "recording_upstream.py"), str(port), str(record)]
    with background_process(args, lambda: _port_open(port), "recording upstream"):
        yield f"http://127.0.0.1:{port}/mcp", record


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def gateway_config(directory: Path, port: int, upstream_url: str, jwks_url: str, **oauth: Any) -> Path:
    secret_file = directory / "upstream-secret"
    secret_file.write_text(UPSTREAM_SECRET + "\n")
    secret_file.chmod(0o600)
    return write_config(
        directory,
        {"rec": {"url": upstream_url, "headers_from_files": {"Authorization": str(secret_file)}}},
        auth={
            "api_keys": True,
            "oauth": {
                "issuer": ISSUER,
                "audience": f"http://127.0.0.1:{port}/mcp",
                "jwks_uri": f"{jwks_url}/jwks.json",
                "required_typ": "at+jwt",
                "tool_scopes": {"rec__write_*": "tools:write"},
                **oauth,
            },
        },
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, recording_upstream: tuple[str, Path]) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("http-auth")
    upstream_url, record = recording_upstream
    port = free_port()
    issuer = Issuer(audience=f"http://127.0.0.1:{port}/mcp")
    jwks, attacker = KeyServer(issuer.jwks()), KeyServer({"keys": []})
    config = gateway_config(directory, port, upstream_url, jwks.url)
    log = directory / "gateway.log"
    try:
        with http_gateway(config, log, port=port) as url:
            yield World(url, issuer, record, log, config, upstream_url, attacker, jwks)
    finally:
        jwks.close()
        attacker.close()


def modern(method: str, request_id: int = 1, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": META}}


def post(url: str, body: dict[str, Any], token: str | None, **extra: str) -> httpx.Response:
    headers = {"Accept": ACCEPT, "Content-Type": "application/json", "MCP-Protocol-Version": "2026-07-28"}
    headers["Mcp-Method"] = body["method"]
    if body["method"] == "tools/call":
        headers["Mcp-Name"] = body["params"]["name"]
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url, json=body, headers={**headers, **extra}, timeout=30)


def call(url: str, token: str | None, tool: str = "rec__echo", **arguments: Any) -> httpx.Response:
    return post(url, modern("tools/call", name=tool, arguments=arguments or {"text": "hi"}), token)


# -- A13: unauthenticated access ------------------------------------------------------------------


def test_no_token_gets_401_naming_the_protected_resource_metadata(world: World) -> None:
    response = call(world.url, None)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    prm_url = world.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    assert challenge.startswith("Bearer ") and f'resource_metadata="{prm_url}"' in challenge
    metadata = httpx.get(prm_url).json()
    assert metadata["resource"] == str(world.url)
    assert metadata["authorization_servers"] == [ISSUER]
    assert httpx.get(world.url.replace("/mcp", "/.well-known/oauth-protected-resource")).json() == metadata
    assert world.upstream_calls() == []


# -- D*: every bad token --------------------------------------------------------------------------


def test_every_bad_token_is_refused_with_no_upstream_call_and_no_trace(world: World) -> None:
    vectors = world.issuer.bad_tokens(world.attacker.url)
    vectors.append(("A4-token-for-the-upstream-api", world.issuer.token(aud=world.upstream_url)))
    vectors.append(("D15-token-seen-upstream", UPSTREAM_SECRET.split()[1]))
    for name, token in vectors:
        response = call(world.url, token)
        assert response.status_code == 401, name
        assert 'error="invalid_token"' in response.headers["www-authenticate"], name
        assert "Traceback" not in response.text and token not in response.text, name
    assert world.upstream_calls() == []
    assert world.attacker.hits == 0  # D10: no header-supplied URL was ever fetched
    assert "Traceback" not in world.log.read_text()


def test_oversize_and_query_tokens_are_refused(world: World) -> None:
    for size in (64 * 1024, 1024 * 1024):
        try:
            response = call(world.url, "a" * size)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            continue  # past the HTTP server's own header limit it answers 400 and drops the connection
        assert response.status_code in (400, 401, 431), size
    token = world.issuer.token()
    response = httpx.post(
        world.url + "?access_token=" + token,
        json=modern("tools/list"),
        headers={
            "Accept": ACCEPT,
            "Content-Type": "application/json",
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/list",
        },
    )
    assert response.status_code == 401
    assert world.upstream_calls() == []


# -- A4 / D16: the client's token never goes upstream ---------------------------------------------


@pytest.mark.anyio
async def test_a_valid_jwt_works_through_the_real_client_and_never_reaches_the_upstream(world: World) -> None:
    token = world.issuer.token(scope="mcp:tools-basic tools:write")
    async with Client(authenticated(world.url, token)) as client:
        result = await client.call_tool("rec__echo", {"text": "through the gateway"})
        assert result.content[0].text == "through the gateway"  # type: ignore[union-attr]
        written = await client.call_tool("rec__write_note", {"text": "abc"})
        assert written.content[0].text == "stored 3 characters"  # type: ignore[union-attr]
    seen = world.upstream_requests()
    calls = [r for r in seen if r["method"] == "tools/call"]
    assert len(calls) == 2
    assert {r["authorization"] for r in seen} == {UPSTREAM_SECRET}  # its own credential, every time
    assert not any(token in json.dumps(r) for r in seen)
    assert token not in world.log.read_text()  # D16: the token is in no log either
    audit = subprocess.run(
        [*MCPWARDEN, "audit", "tail", "-n", "50", "--format", "json", "-c", str(world.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    events = [json.loads(line) for line in audit.stdout.splitlines()]
    assert any(e.get("principal") == "alice" and e.get("method") == "tools/call" for e in events)
    assert token not in audit.stdout


@pytest.mark.anyio
async def test_api_keys_work_and_revocation_needs_no_restart(world: World) -> None:
    key = mint_key(world.config, "carol", ["ops"])
    async with Client(authenticated(world.url, key)) as client:
        result = await client.call_tool("rec__echo", {"text": "by key"})
        assert result.content[0].text == "by key"  # type: ignore[union-attr]
    listed = subprocess.run(
        [*MCPWARDEN, "keys", "list", "--format", "json", "-c", str(world.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    key_id = next(row["id"] for row in json.loads(listed.stdout) if row["principal"] == "carol")
    subprocess.run([*MCPWARDEN, "keys", "revoke", key_id, "-c", str(world.config)], check=True, timeout=60)
    response = call(world.url, key)
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]
    assert key not in world.log.read_text()


# -- A11 / D14: per-tool scopes ---------------------------------------------------------------------


def test_missing_scope_gets_403_naming_only_the_scope_needed(world: World) -> None:
    before = len(world.upstream_calls())
    basic = world.issuer.token(scope="mcp:tools-basic")
    response = call(world.url, basic, "rec__write_note", text="x")
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="tools:write"' in challenge
    assert response.json()["error"]["data"] == {"reason": "insufficient-scope", "scope": "tools:write"}
    assert len(world.upstream_calls()) == before
    # Listing agrees with calling: the write tool is not offered to this token.
    listed = post(world.url, modern("tools/list"), basic)
    names = {tool["name"] for tool in listed.json()["result"]["tools"]}
    assert "rec__echo" in names and "rec__write_note" not in names
    assert call(world.url, basic, "rec__echo").status_code == 200


# -- A6 / D21: a legacy session belongs to the credential that opened it ---------------------------


def test_a_session_cannot_be_used_by_another_principal_or_without_a_token(world: World) -> None:
    key_a, key_b = mint_key(world.config, "dave"), mint_key(world.config, "erin")
    legacy = {"Accept": ACCEPT, "Content-Type": "application/json"}
    init = httpx.post(
        world.url,
        json=LEGACY_INITIALIZE,
        headers={**legacy, "Authorization": f"Bearer {key_a}"},
    )
    assert init.status_code == 200
    session = {
        **legacy,
        "Mcp-Session-Id": init.headers["mcp-session-id"],
        "MCP-Protocol-Version": "2025-11-25",
    }
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

    def with_token(token: str | None) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(world.url, json=listing, headers={**session, **auth})

    assert with_token(key_b).status_code == 404  # another principal's session does not exist for them
    assert with_token(None).status_code == 401
    assert with_token(world.issuer.token(sub="dave", exp=0)).status_code == 401  # expired token
    assert with_token(world.issuer.token(sub="dave")).status_code == 404  # same name, other credential kind
    assert with_token(key_a).status_code == 200
    # Nor can another principal close the session or open its stream.
    other = {**session, "Authorization": f"Bearer {key_b}"}
    assert httpx.delete(world.url, headers=other).status_code == 404
    assert httpx.get(world.url, headers={**session, "Accept": "text/event-stream"}).status_code == 401
    assert with_token(key_a).status_code == 200


# -- D19: key rotation / JWKS outage ---------------------------------------------------------------


def test_jwks_outage_fails_closed_after_the_ttl(tmp_path: Path, recording_upstream: tuple[str, Path]) -> None:
    port = free_port()
    issuer = Issuer(audience=f"http://127.0.0.1:{port}/mcp")
    jwks = KeyServer(issuer.jwks())
    config = gateway_config(
        tmp_path, port, recording_upstream[0], jwks.url, jwks_ttl=1, jwks_refresh_interval=0
    )
    try:
        with http_gateway(config, port=port) as url:
            token = issuer.token()
            assert call(url, token).status_code == 200
            jwks.status = 500
            wait_until(lambda: call(url, token).status_code == 401, 20, "the stale keys to expire")
            jwks.status = 200
            wait_until(lambda: call(url, token).status_code == 200, 20, "the keys to come back")
            jwks.document = {"keys": []}  # k1 removed at the source
            wait_until(lambda: call(url, token).status_code == 401, 20, "the removed key to be refused")
    finally:
        jwks.close()


def test_step_up_within_a_legacy_session_uses_the_new_tokens_scopes(world: World) -> None:
    legacy = {"Accept": ACCEPT, "Content-Type": "application/json"}
    basic = world.issuer.token(scope="mcp:tools-basic")
    init = httpx.post(
        world.url,
        json=LEGACY_INITIALIZE,
        headers={**legacy, "Authorization": f"Bearer {basic}"},
    )
    session = {
        **legacy,
        "Mcp-Session-Id": init.headers["mcp-session-id"],
        "MCP-Protocol-Version": "2025-11-25",
    }
    write = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "rec__write_note", "arguments": {"text": "x"}},
    }
    refused = httpx.post(world.url, json=write, headers={**session, "Authorization": f"Bearer {basic}"})
    assert refused.status_code == 403 and 'scope="tools:write"' in refused.headers["www-authenticate"]
    stepped_up = world.issuer.token(scope="mcp:tools-basic tools:write")
    answered = httpx.post(world.url, json=write, headers={**session, "Authorization": f"Bearer {stepped_up}"})
    assert answered.status_code == 200
    assert "stored 1 characters" in answered.text and "insufficient-scope" not in answered.text
