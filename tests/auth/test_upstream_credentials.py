"""The gateway's own upstream credentials: header files and OAuth client credentials (issue 3 item 4).

The end-to-end proof that a client's token never goes upstream is in tests/e2e/test_http_auth.py;
here, that what goes upstream is exactly what the configuration names, fetched and refreshed right.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcpwarden.config import ServerSpec
from mcpwarden.errors import UpstreamError
from mcpwarden.upstream.credentials import ClientCredentialsAuth, upstream_auth, upstream_headers
from tests.support import TokenEndpoint, spec_for

pytestmark = pytest.mark.anyio


def test_header_values_come_from_files_and_are_reread(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("Bearer first\n")
    spec = ServerSpec(
        url="https://up.example/mcp",
        headers={"X-Team": "a"},
        headers_from_files={"Authorization": str(secret)},
    )
    assert upstream_headers("tickets", spec) == {"X-Team": "a", "Authorization": "Bearer first"}
    secret.write_text("Bearer rotated")
    assert upstream_headers("tickets", spec)["Authorization"] == "Bearer rotated"


@pytest.mark.parametrize("content", [b"", b"Bearer a\r\nX-Injected: 1", b"\xff\xfe", b"x" * 20000])
def test_unusable_header_files_are_refused_without_echoing_them(tmp_path: Path, content: bytes) -> None:
    secret = tmp_path / "token"
    secret.write_bytes(content)
    spec = ServerSpec(url="https://up.example/mcp", headers_from_files={"Authorization": str(secret)})
    with pytest.raises(UpstreamError) as caught:
        upstream_headers("tickets", spec)
    assert "tickets" in str(caught.value) and "X-Injected" not in str(caught.value)


def test_missing_header_file_names_the_file(tmp_path: Path) -> None:
    spec = ServerSpec(
        url="https://up.example/mcp", headers_from_files={"Authorization": str(tmp_path / "nope")}
    )
    with pytest.raises(UpstreamError, match="nope"):
        upstream_headers("tickets", spec)


def test_credential_config_is_checked() -> None:
    with pytest.raises(ValueError, match="HTTP servers"):
        ServerSpec(command="x", headers_from_files={"Authorization": "/run/secrets/x"})
    with pytest.raises(ValueError, match="both"):
        ServerSpec(
            url="https://u.example/mcp",
            headers={"authorization": "a"},
            headers_from_files={"Authorization": "f"},
        )
    oauth = {"token_url": "https://as.example/token", "client_id": "gw", "client_secret": "s"}
    with pytest.raises(ValueError, match="do not give it in headers"):
        ServerSpec(url="https://u.example/mcp", headers={"Authorization": "a"}, oauth_client=oauth)
    with pytest.raises(ValueError, match="https"):
        ServerSpec(
            url="https://u.example/mcp", oauth_client={**oauth, "token_url": "http://as.example/token"}
        )
    with pytest.raises(ValueError, match="exactly one"):
        ServerSpec(url="https://u.example/mcp", oauth_client={**oauth, "client_secret_file": "/x"})
    assert upstream_auth("s", ServerSpec(url="https://u.example/mcp")) is None


class Upstream:
    """Stands in for the MCP upstream: records the Authorization it gets; 401 for tokens it revoked."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        self.revoked: set[str] = set()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        authorization = request.headers.get("Authorization")
        self.seen.append(authorization)
        if authorization is None or authorization.removeprefix("Bearer ") in self.revoked:
            return httpx2.Response(401)
        return httpx2.Response(200, json={"ok": True})


async def test_client_credentials_token_is_fetched_once_and_sent_upstream(endpoint: TokenEndpoint) -> None:
    upstream = Upstream()
    auth = upstream_auth("tickets", spec_for(endpoint))
    assert isinstance(auth, ClientCredentialsAuth)
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(upstream), auth=auth) as http:
        for _ in range(3):
            assert (await http.post("https://up.example/mcp", json={})).status_code == 200
    assert upstream.seen == ["Bearer upstream-token-1"] * 3
    assert len(endpoint.requests) == 1
    sent = endpoint.requests[0]
    assert sent["authorization"] == "Basic " + base64.b64encode(b"gateway:s3cret").decode()
    assert sent["form"] == {
        "grant_type": ["client_credentials"],
        "scope": ["tickets:read"],
        "resource": ["https://up.example/mcp"],
    }


async def test_a_401_upstream_fetches_a_new_token_once(endpoint: TokenEndpoint, tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("from-file\n")
    upstream = Upstream()
    auth = upstream_auth("tickets", spec_for(endpoint, client_secret=None, client_secret_file=str(secret)))
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(upstream), auth=auth) as http:
        assert (await http.get("https://up.example/mcp")).status_code == 200
        upstream.revoked.add("upstream-token-1")
        endpoint.answer = {**endpoint.answer, "access_token": "upstream-token-2"}
        assert (await http.get("https://up.example/mcp")).status_code == 200
    assert upstream.seen == ["Bearer upstream-token-1", "Bearer upstream-token-1", "Bearer upstream-token-2"]
    assert endpoint.requests[0]["authorization"] == "Basic " + base64.b64encode(b"gateway:from-file").decode()


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (400, {"error": "invalid_client"}),
        (200, {"token_type": "Bearer"}),
        (200, {"access_token": "t", "token_type": "mac"}),
        (200, {"access_token": "a\r\nb", "token_type": "Bearer"}),
    ],
)
async def test_a_bad_token_endpoint_answer_is_an_upstream_error(
    endpoint: TokenEndpoint, status: int, answer: dict[str, Any]
) -> None:
    endpoint.status, endpoint.answer = status, answer
    auth = upstream_auth("tickets", spec_for(endpoint))
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(Upstream()), auth=auth) as http:
        with pytest.raises(UpstreamError) as caught:
            await http.get("https://up.example/mcp")
    assert "s3cret" not in str(caught.value) and "tickets" in str(caught.value)
