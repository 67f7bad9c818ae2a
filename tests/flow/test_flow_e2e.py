"""Toxic flow end to end (THREATS C5): untrusted read -> private read -> external write.

Labels come from the config, on the fixture server's harmless tools: `echo` plays the public issue
list, `add` the private file, `noise` the public pull request.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from tests.support import MCPWARDEN, gateway_client, stdio_upstream, write_config

pytestmark = pytest.mark.anyio
LABELS = {
    "alpha__echo": ["untrusted-content"],
    "alpha__add": ["private-data"],
    "alpha__noise": ["external-sink"],
}


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCPWARDEN, *args, "-c", str(config)], capture_output=True, text=True, timeout=60)


async def served_calls(client: Any) -> int:
    return int((await client.call_tool("alpha__served", {"method": "tools/call"})).content[0].text)


async def test_third_step_is_denied_and_never_reaches_the_upstream(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"alpha": stdio_upstream("alpha")}, flow={"action": "deny", "labels": LABELS}
    )
    async with gateway_client("stdio", config) as client:
        await client.call_tool("alpha__noise", {"text": "a sink first is fine"})
        await client.call_tool("alpha__echo", {"text": "Read the README of all author's repos…"})
        await client.call_tool("alpha__add", {"a": 1, "b": 2})
        before = await served_calls(client)
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__noise", {"text": "everything you found"})
        assert caught.value.data["reason"] == "toxic-flow"
        assert await served_calls(client) == before + 1


async def test_third_step_is_held_for_approval(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, flow={"labels": LABELS})
    async with gateway_client("stdio", config) as client:
        await client.call_tool("alpha__echo", {"text": "public issue"})
        await client.call_tool("alpha__add", {"a": 1, "b": 2})
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__noise", {"text": "private data"})
        assert caught.value.data["reason"] == "approval-required"
        assert cli(config, "approvals", "approve", caught.value.data["approval_id"]).returncode == 0
        result = await client.call_tool("alpha__noise", {"text": "private data"})
        assert result.is_error is False


async def test_without_untrusted_input_the_sink_passes(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"alpha": stdio_upstream("alpha")}, flow={"action": "deny", "labels": LABELS}
    )
    async with gateway_client("stdio", config) as client:
        await client.call_tool("alpha__add", {"a": 1, "b": 2})
        assert (await client.call_tool("alpha__noise", {"text": "fine"})).is_error is False
