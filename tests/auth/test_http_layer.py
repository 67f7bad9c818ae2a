"""The HTTP authentication layer in process: what reaches the app behind it, and what the caller gets.

The app behind the layer records every request it is handed; a refused request must never get
there (THREATS D: "no upstream call"). The same layer runs in the real gateway (tests/e2e).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from mcpwarden.auth.http import IDENTITY_SCOPE_KEY, HttpAuth
from mcpwarden.auth.keys import ApiKeyStore
from mcpwarden.config import Settings
from mcpwarden.exchange import Identity
from mcpwarden.transport import http as http_transport
from mcpwarden.transport.http import WireCheckMiddleware, transport_security
from tests.auth.tokens import ISSUER, Issuer

pytestmark = pytest.mark.anyio
AUDIENCE = "http://127.0.0.1:8765/mcp"
PRM_URL = "http://127.0.0.1:8765/.well-known/oauth-protected-resource/mcp"
ACCEPT = "application/json, text/event-stream"


class Recorder:
    """Stands in for the SDK app: records who reached it, answers 200."""

    def __init__(self) -> None:
        self.seen: list[Identity] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(scope[IDENTITY_SCOPE_KEY])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer(audience=AUDIENCE)


@pytest.fixture
def world(issuer: Issuer, tmp_path: Path) -> tuple[Settings, Recorder, str]:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()))
    settings = Settings.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "auth": {
                "api_keys": True,
                "oauth": {
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "jwks_file": str(jwks),
                    "tool_scopes": {"notes__write*": "tools:write", "notes__admin_*": "notes:admin"},
                },
            },
        }
    )
    _, key = ApiKeyStore(settings.state_dir).create("bob", ("ops",))
    return settings, Recorder(), key


@pytest.fixture
async def client(world: tuple[Settings, Recorder, str]) -> AsyncIterator[httpx.AsyncClient]:
    settings, recorder, _ = world
    security = transport_security(settings, "127.0.0.1")
    auth = HttpAuth.from_settings(settings, security)
    app = Starlette(
        routes=[
            *auth.routes,
            Mount("/", app=auth.wrap(WireCheckMiddleware(auth.scope_challenge(recorder), security, 65536))),
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as http:
        yield http
    auth.close()


def call(name: str, request_id: int = 7) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": {}},
    }


async def post(
    http: httpx.AsyncClient, token: str | None, body: Any = None, **headers: str
) -> httpx.Response:
    sent = {"Accept": ACCEPT, "Content-Type": "application/json", **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return await http.post(
        "/mcp", json=body or {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=sent
    )


def assert_challenge(response: httpx.Response, error: str | None) -> None:
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and f'resource_metadata="{PRM_URL}"' in challenge
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge
    assert "Traceback" not in response.text and response.json()["error"] == (error or "unauthorized")


async def test_identity_scope_key_is_the_one_the_transport_reads() -> None:
    assert IDENTITY_SCOPE_KEY == http_transport.IDENTITY_SCOPE_KEY


async def test_no_credentials_get_401_naming_the_metadata(client: httpx.AsyncClient, world: Any) -> None:
    assert_challenge(await post(client, None), None)
    assert world[1].seen == []


async def test_api_key_and_jwt_both_authenticate(
    client: httpx.AsyncClient, world: Any, issuer: Issuer
) -> None:
    _, recorder, key = world
    assert (await post(client, key)).status_code == 200
    assert (await post(client, issuer.token())).status_code == 200
    by_key, by_jwt = recorder.seen
    assert (by_key.name, by_key.method, by_key.roles) == ("bob", "api-key", frozenset({"ops"}))
    assert (by_jwt.name, by_jwt.method, by_jwt.scopes) == ("alice", "jwt", frozenset({"mcp:tools-basic"}))


async def test_every_bad_token_gets_401_invalid_token_and_never_reaches_the_app(
    client: httpx.AsyncClient, world: Any, issuer: Issuer
) -> None:
    for name, token in issuer.bad_tokens("http://127.0.0.1:9"):
        response = await post(client, token)
        assert response.status_code == 401, name
        assert 'error="invalid_token"' in response.headers["www-authenticate"], name
        assert token not in response.text and token not in response.headers["www-authenticate"], name
    assert world[1].seen == []


async def test_revoked_key_is_refused_on_the_next_request(client: httpx.AsyncClient, world: Any) -> None:
    settings, _, key = world
    assert (await post(client, key)).status_code == 200
    store = ApiKeyStore(settings.state_dir)  # as `mcpwarden keys revoke` would, from another process
    store.revoke(key)
    store.close()
    assert_challenge(await post(client, key), "invalid_token")


@pytest.mark.parametrize("size", [64 * 1024, 1024 * 1024])
async def test_oversize_authorization_is_refused_before_parsing(client: httpx.AsyncClient, size: int) -> None:
    response = await post(client, "a" * size)
    assert response.status_code in (401, 431)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_many_authorization_headers_are_refused(
    client: httpx.AsyncClient, world: Any, issuer: Issuer
) -> None:
    token = issuer.token()
    headers = [("Accept", ACCEPT), ("Content-Type", "application/json")] + [
        ("Authorization", f"Bearer {token}")
    ] * 50
    response = await client.post(
        "/mcp", content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', headers=headers
    )
    assert response.status_code == 401 and 'error="invalid_request"' in response.headers["www-authenticate"]
    assert world[1].seen == []


async def test_query_string_tokens_are_refused(client: httpx.AsyncClient, world: Any, issuer: Issuer) -> None:
    response = await client.post(
        "/mcp?access_token=" + issuer.token(),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Accept": ACCEPT,
            "Content-Type": "application/json",
            "Authorization": f"Bearer {issuer.token()}",
        },
    )
    assert response.status_code == 401 and 'error="invalid_request"' in response.headers["www-authenticate"]
    assert world[1].seen == []


async def test_other_schemes_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/mcp", json={}, headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    assert_challenge(response, "invalid_token")


async def test_foreign_origin_is_403_before_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post("/mcp", json={}, headers={"Origin": "http://attacker.example"})
    assert response.status_code == 403 and "www-authenticate" not in response.headers


async def test_protected_resource_metadata(client: httpx.AsyncClient) -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        response = await client.get(path)
        assert response.status_code == 200
        metadata = response.json()
        assert metadata["resource"] == AUDIENCE
        assert metadata["authorization_servers"] == [ISSUER]
        assert metadata["bearer_methods_supported"] == ["header"]
        assert metadata["scopes_supported"] == ["notes:admin", "tools:write"]


async def test_insufficient_scope_is_403_naming_only_the_needed_scope(
    client: httpx.AsyncClient, world: Any, issuer: Issuer
) -> None:
    basic = issuer.token(scope="mcp:tools-basic")
    response = await post(client, basic, call("notes__write_note"))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="tools:write"' in challenge
    assert f'resource_metadata="{PRM_URL}"' in challenge
    error = response.json()
    assert error["id"] == 7 and error["error"]["data"] == {
        "reason": "insufficient-scope",
        "scope": "tools:write",
    }
    assert world[1].seen == []
    # Exact token match: neither a longer scope nor a wildcard stands in for the one needed.
    for near_miss in ("tools:write-all", "tools:*", "TOOLS:WRITE"):
        assert (
            await post(client, issuer.token(scope=near_miss), call("notes__write_note"))
        ).status_code == 403
    assert (
        await post(client, issuer.token(scope="tools:write"), call("notes__write_note"))
    ).status_code == 200
    assert (await post(client, basic, call("notes__search"))).status_code == 200  # needs no scope


async def test_api_keys_are_not_subject_to_token_scopes(client: httpx.AsyncClient, world: Any) -> None:
    assert (await post(client, world[2], call("notes__write_note"))).status_code == 200


def test_a_relative_jwks_file_is_found_beside_the_config(issuer: Issuer, tmp_path: Path) -> None:
    from mcpwarden.config import parse_settings

    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "jwks.json").write_text(json.dumps(issuer.jwks()))
    text = f"""
auth:
  oauth: {{issuer: "{ISSUER}", audience: "{AUDIENCE}", jwks_file: keys/jwks.json}}
state_dir: state
"""
    settings = parse_settings(text, tmp_path / "mcpwarden.yaml", {})
    auth = HttpAuth.from_settings(settings, transport_security(settings, "127.0.0.1"))
    try:
        import anyio

        identity = anyio.run(auth.authenticator.authenticate, issuer.token())
        assert identity.name == "alice"
    finally:
        auth.close()


def anonymous_app(settings: Settings, recorder: Recorder, host: str) -> Starlette:
    settings = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"anonymous": True})}  # type: ignore[union-attr]
    )
    security = transport_security(settings, host)
    auth = HttpAuth.from_settings(settings, security, host)
    wrapped = auth.wrap(WireCheckMiddleware(auth.scope_challenge(recorder), security, 65536))
    return Starlette(routes=[Mount("/", app=wrapped)])


async def test_anonymous_lets_credential_less_callers_in_on_loopback_only(
    world: tuple[Settings, Recorder, str], issuer: Issuer
) -> None:
    settings, recorder, _ = world
    transport = httpx.ASGITransport(app=anonymous_app(settings, recorder, "127.0.0.1"))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as http:
        assert (await post(http, None)).status_code == 200
        assert recorder.seen[-1].name == "anonymous"
        # Credentials that are sent are still checked; and an anonymous caller holds no scopes.
        assert_challenge(await post(http, issuer.token(aud="https://other.example")), "invalid_token")
        assert (await post(http, None, call("notes__write_note"))).status_code == 403
    seen = len(recorder.seen)
    exposed = httpx.ASGITransport(app=anonymous_app(settings, recorder, "0.0.0.0"))
    async with httpx.AsyncClient(transport=exposed, base_url="http://127.0.0.1:8765") as http:
        assert (await post(http, None)).status_code == 401  # not on a loopback address: ignored
    assert len(recorder.seen) == seen
