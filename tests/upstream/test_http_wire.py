"""The fast lane to a modern HTTP upstream (`upstream/wire.post_wire`): the same outcomes as the
SDK's transport gives for results, tool errors, timeouts, size caps and a server that goes away."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from tests.support import gateway_client, http_upstream, write_config

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
