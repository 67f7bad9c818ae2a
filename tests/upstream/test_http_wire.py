"""The fast lane to a modern HTTP upstream (`upstream/wire.WirePoster`): the same outcomes as the
SDK's transport gives for results, tool errors, timeouts, size caps and a server that goes away."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from mcpwarden.upstream.credentials import upstream_auth
from mcpwarden.upstream.wire import WirePoster
from tests.support import (
    LoopbackServer,
    QuietHandler,
    TokenEndpoint,
    gateway_client,
    http_upstream,
    spec_for,
    write_config,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def upstream() -> Iterator[dict[str, Any]]:
    with http_upstream("web") as entry:
        yield entry


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def test_results_errors_timeouts_and_caps(upstream: dict[str, Any], tmp_path: Path) -> None:
    config = write_config(tmp_path, {"web": upstream}, gateway={"request_timeout": 1.0, "max_result_kb": 64})
    async with gateway_client("stdio", config) as client:
        assert _text(await client.call_tool("web__echo", {"text": "over http"})) == "over http"
        added = await client.call_tool("web__add", {"a": 2, "b": 3})
        assert added.structured_content == {"result": 5}
        failed = await client.call_tool("web__fail", {"message": "it broke"})
        assert failed.is_error
        with pytest.raises(MCPError) as caught:
            await client.call_tool("web__nope", {})
        assert caught.value.data["reason"] == "unknown-tool"

        started = time.monotonic()
        with pytest.raises(MCPError) as caught:
            await client.call_tool("web__slow", {"seconds": 20})
        assert caught.value.data["reason"] == "upstream-timeout"
        assert time.monotonic() - started < 5

        assert len(_text(await client.call_tool("web__big", {"kb": 16}))) == 16 * 1024
        with pytest.raises(MCPError) as caught:
            await client.call_tool("web__big", {"kb": 200})
        assert caught.value.data["reason"] == "result-too-large"
        assert _text(await client.call_tool("web__echo", {"text": "still fine"})) == "still fine"


async def test_a_server_that_went_away_fails_the_call_at_once(tmp_path: Path) -> None:
    with contextlib.ExitStack() as server:
        entry = server.enter_context(http_upstream("gone"))
        config = write_config(tmp_path, {"gone": entry}, gateway={"request_timeout": 10})
        async with gateway_client("stdio", config) as client:
            assert _text(await client.call_tool("gone__echo", {"text": "here"})) == "here"
            server.close()  # the upstream process stops
            started = time.monotonic()
            with pytest.raises(MCPError):
                await client.call_tool("gone__echo", {"text": "anyone?"})
            assert time.monotonic() - started < 5


class RecordingUpstream(LoopbackServer):
    """A bare HTTP server on 127.0.0.1 standing in for a modern MCP upstream: it answers every POST
    with a JSON-RPC result, records what it was sent, and can refuse revoked tokens, set a cookie or
    redirect."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str | None]] = []
        self.revoked: set[str] = set()
        self.redirect = False
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                authorization = self.headers.get("Authorization")
                outer.seen.append({"authorization": authorization, "cookie": self.headers.get("Cookie")})
                if outer.redirect:
                    self.reply(307, headers={"Location": "http://127.0.0.1:9/elsewhere"})
                elif authorization is None or authorization.removeprefix("Bearer ") in outer.revoked:
                    self.reply(401)
                else:
                    result = {"jsonrpc": "2.0", "id": body["id"], "result": {"ok": True}}
                    self.reply_json(200, result, {"Set-Cookie": "session=sticky"})

        self.serve(Handler, "/mcp")


@pytest.fixture
def recording() -> Iterator[RecordingUpstream]:
    served = RecordingUpstream()
    yield served
    served.close()


async def test_the_gateway_token_is_sent_and_renewed_once_on_401(
    recording: RecordingUpstream, endpoint: TokenEndpoint
) -> None:
    auth = upstream_auth("tickets", spec_for(endpoint))
    poster = WirePoster(recording.url, {"x-gateway": "yes"}, auth, 65536)
    try:
        assert await poster.post("tools/call", {"name": "t"}, {}, 5) == {"ok": True}
        recording.revoked.add("upstream-token-1")
        endpoint.answer = {**endpoint.answer, "access_token": "upstream-token-2"}
        assert await poster.post("tools/call", {"name": "t"}, {}, 5) == {"ok": True}
    finally:
        await poster.close()
    assert [seen["authorization"] for seen in recording.seen] == [
        "Bearer upstream-token-1",
        "Bearer upstream-token-1",
        "Bearer upstream-token-2",
    ]
    assert len(endpoint.requests) == 2
    assert all(seen["cookie"] is None for seen in recording.seen)  # no cookie is kept between callers


async def test_a_redirect_is_not_followed(recording: RecordingUpstream) -> None:
    recording.redirect = True
    poster = WirePoster(recording.url, {"authorization": "Bearer static"}, None, 65536)
    try:
        with pytest.raises(MCPError, match="HTTP 307"):
            await poster.post("tools/call", {"name": "t"}, {}, 5)
    finally:
        await poster.close()
    assert len(recording.seen) == 1
