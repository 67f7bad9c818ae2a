"""Rug pull end to end (THREATS C3, C4): a server changes a tool's description on its N-th listing.

Through `mcpwarden stdio` and the real `mcp.Client`: with list_changed (the gateway re-lists at
once) and without it (the gateway sees the change when the server restarts and is listed again,
or at its next periodic re-listing, `pinning.poll_interval`).
Only the changed tool is withheld and refused with `tool-definition-changed`; `mcpwarden pins list`
shows the diff; `mcpwarden pins approve SERVER__TOOL` restores it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from tests.support import FIXTURES, MCPWARDEN, PYTHON, gateway_client, write_config

pytestmark = pytest.mark.anyio


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCPWARDEN, *args, "-c", str(config)], capture_output=True, text=True, timeout=60)


async def names(client: Any) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


@pytest.mark.parametrize("how", ["list_changed", "restart", "poll"])
async def test_rug_pull_is_withheld_until_approved(tmp_path: Path, how: str) -> None:
    notify = how == "list_changed"
    counter = tmp_path / "listings"
    server = {
        "command": PYTHON,
        "args": [str(FIXTURES / "rugpull_server.py")],
        "env": {
            "RUGPULL_COUNTER": str(counter),
            "RUGPULL_AFTER": "2",
            "RUGPULL_NOTIFY": "1" if notify else "0",
        },
    }
    poll = {"poll_interval": 3.0} if how == "poll" else {}  # after the first listing below
    # The poisoned redefinition would also be refused by content scanning (content-blocked); this
    # test is about what pinning does on its own.
    config = write_config(tmp_path, {"facts": server}, pinning=poll, content={"enabled": False})
    async with gateway_client("stdio", config) as client:
        first = await names(client)
        assert {"facts__fact_of_the_day", "facts__echo"} <= first
        assert (await client.call_tool("facts__fact_of_the_day", {})).is_error is False

        await client.call_tool("facts__poke", {})  # announces list_changed only when `notify`
        if how == "restart":
            assert await names(client) == first  # nothing announced: nothing changed for the gateway yet
            with pytest.raises(MCPError):
                await client.call_tool("facts__crash", {})  # restarted and listed again
        # "poll": the gateway re-lists on its own every pinning.poll_interval seconds
        with anyio.fail_after(20):
            while "facts__fact_of_the_day" in await names(client):
                await anyio.sleep(0.1)
        assert await names(client) == first - {"facts__fact_of_the_day"}  # only that tool
        with pytest.raises(MCPError) as caught:
            await client.call_tool("facts__fact_of_the_day", {})
        assert caught.value.data["reason"] == "tool-definition-changed"
        assert (await client.call_tool("facts__echo", {"text": "still here"})).is_error is False

        review = cli(config, "pins", "list")
        assert review.returncode == 0, review.stderr
        assert "facts__fact_of_the_day" in review.stdout and "+13241234123" in review.stdout
        assert "pins approve facts__fact_of_the_day" in review.stdout
        pending = json.loads(cli(config, "pins", "list", "--format", "json").stdout)["pending"]
        assert [(p["target"], p["change"]) for p in pending] == [("facts__fact_of_the_day", "changed")]

        approved = cli(config, "pins", "approve", "facts__fact_of_the_day")
        assert approved.returncode == 0, approved.stderr
        assert "facts__fact_of_the_day" in await names(client)
        assert (await client.call_tool("facts__fact_of_the_day", {})).is_error is False
    assert cli(config, "pins", "approve", "facts__fact_of_the_day").returncode == 1  # nothing pending
    assert int(counter.read_text()) >= 2


async def test_prompts_and_resources_are_pinned_too(tmp_path: Path) -> None:
    """The same rug pull on a prompt and a resource: withheld, refused, shown, approved."""
    server = {
        "command": PYTHON,
        "args": [str(FIXTURES / "rugpull_server.py")],
        "env": {"RUGPULL_COUNTER": str(tmp_path / "listings"), "RUGPULL_AFTER": "2"},
    }
    config = write_config(tmp_path, {"facts": server}, content={"enabled": False})
    resource = "mcpwarden://facts/facts://today"

    async def prompts(client: Any) -> set[str]:
        return {prompt.name for prompt in (await client.list_prompts()).prompts}

    async def resources(client: Any) -> set[str]:
        return {str(item.uri) for item in (await client.list_resources()).resources}

    async with gateway_client("stdio", config) as client:
        assert "facts__daily_briefing" in await prompts(client)  # pinned on first sight
        assert resource in await resources(client)
        with pytest.raises(MCPError):
            await client.call_tool("facts__crash", {})  # restarted: listed again, now poisoned
        with anyio.fail_after(20):
            while "facts__daily_briefing" in await prompts(client):
                await anyio.sleep(0.1)
        assert resource not in await resources(client)
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("facts__daily_briefing")
        assert caught.value.data["reason"] == "tool-definition-changed"
        with pytest.raises(MCPError) as caught:
            await client.read_resource(resource)
        assert caught.value.data["reason"] == "tool-definition-changed"

        pending = json.loads(cli(config, "pins", "list", "--format", "json").stdout)["pending"]
        targets = {p["target"]: p for p in pending}
        assert "~/.ssh/id_rsa" in targets["facts__daily_briefing"]["diff"]
        assert targets[resource]["change"] == "changed"

        assert cli(config, "pins", "approve", "facts__daily_briefing").returncode == 0
        assert cli(config, "pins", "approve", resource).returncode == 0
        assert "facts__daily_briefing" in await prompts(client)
        assert resource in await resources(client)
        assert (await client.get_prompt("facts__daily_briefing")).messages
        assert (await client.read_resource(resource)).contents
