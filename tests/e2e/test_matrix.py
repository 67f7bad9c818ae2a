"""Both fronts x both upstream transports x both client eras, with real processes end to end."""

from __future__ import annotations

import contextlib
from pathlib import Path

import mcp_types as types
import pytest

from tests.support import gateway_client, http_upstream, stdio_upstream, write_config

pytestmark = pytest.mark.anyio

MODERN, LEGACY = "2026-07-28", "2025-11-25"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("upstream", ["stdio", "http"])
@pytest.mark.parametrize("front", ["stdio", "http"])
async def test_tools_prompts_resources_through_gateway(
    front: str, upstream: str, mode: str, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        entry = (
            stdio_upstream("alpha") if upstream == "stdio" else stack.enter_context(http_upstream("alpha"))
        )
        config = write_config(tmp_path, {"alpha": entry})
        async with gateway_client(front, config, mode) as client:
            assert client.protocol_version == (MODERN if mode == "auto" else LEGACY)

            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"alpha__echo", "alpha__add", "alpha__slow"} <= names

            result = await client.call_tool("alpha__add", {"a": 2, "b": 40})
            assert not result.is_error
            assert result.structured_content == {"result": 42}

            prompt = await client.get_prompt("alpha__ask", {"topic": "otters"})
            assert isinstance(prompt.messages[0].content, types.TextContent)
            assert prompt.messages[0].content.text == "Tell me about otters."

            resources = (await client.list_resources()).resources
            assert [str(r.uri) for r in resources] == ["mcpwarden://alpha/fixture://greeting"]
            contents = (await client.read_resource("mcpwarden://alpha/fixture://greeting")).contents
            assert isinstance(contents[0], types.TextResourceContents)
            assert contents[0].text == "hello from alpha"
            assert str(contents[0].uri) == "mcpwarden://alpha/fixture://greeting"


@pytest.mark.parametrize("front", ["stdio", "http"])
async def test_legacy_only_upstream_serves_modern_clients(front: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"old": stdio_upstream("old", legacy_only=True)})
    async with gateway_client(front, config, "auto") as client:
        assert client.protocol_version == MODERN
        result = await client.call_tool("old__echo", {"text": "across eras"})
        assert result.content[0].text == "across eras"  # type: ignore[union-attr]


async def test_two_upstreams_with_the_same_tool_name_stay_apart(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha"), "beta": stdio_upstream("beta")})
    async with gateway_client("stdio", config) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert "alpha__echo" in names and "beta__echo" in names
        assert len(names) == len(set(names))
        alpha = await client.read_resource("mcpwarden://alpha/fixture://greeting")
        beta = await client.read_resource("mcpwarden://beta/fixture://greeting")
        assert alpha.contents[0].text == "hello from alpha"  # type: ignore[union-attr]
        assert beta.contents[0].text == "hello from beta"  # type: ignore[union-attr]


async def test_unknown_server_and_tool_are_refused_with_a_reason(tmp_path: Path) -> None:
    from mcp.shared.exceptions import MCPError

    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    async with gateway_client("stdio", config) as client:
        for name in ("ghost__echo", "echo", "alpha__nope"):
            with pytest.raises(MCPError) as caught:
                await client.call_tool(name, {"text": "x"})
            assert caught.value.data["reason"] in {"unknown-tool", "upstream-error"}
            assert "correlation_id" in caught.value.data
