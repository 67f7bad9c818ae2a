"""Approval from the command line, end to end through `mcpwarden stdio` with the real `mcp.Client`.

A high-risk call fails with `approval-required` and an approval id; `mcpwarden approvals approve
ID` (another process, while the gateway runs) lets the same call by the same principal succeed once;
a second identical call needs a new approval. A denied call never reaches the upstream.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support import (
    MCPWARDEN,
    authenticated,
    gateway_client,
    http_gateway,
    mint_key,
    stdio_upstream,
    write_config,
)

pytestmark = pytest.mark.anyio
HELD_FOR_APPROVAL = -32004


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCPWARDEN, *args, "-c", str(config)], capture_output=True, text=True, timeout=60)


def text(result: Any) -> str:
    return str(result.content[0].text)


async def served_calls(client: Any) -> int:
    return int(text(await client.call_tool("alpha__served", {"method": "tools/call"})))


async def test_approve_from_the_command_line_allows_the_same_call_once(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"alpha": stdio_upstream("alpha")}, risk={"overrides": {"alpha__echo": "high"}}
    )
    async with gateway_client("stdio", config) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__echo", {"text": "wipe\u200b everything"})
        assert caught.value.code == HELD_FOR_APPROVAL
        data = caught.value.data
        assert data["reason"] == "approval-required"
        approval_id = data["approval_id"]
        assert approval_id in caught.value.message

        listed = cli(config, "approvals", "list", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        [entry] = json.loads(listed.stdout)
        assert {"id", "principal", "tool", "arguments", "created"} <= set(entry)
        assert entry["id"] == approval_id and entry["tool"] == "alpha__echo" and entry["principal"] == "stdio"
        assert entry["arguments"] == {"text": "wipe<U+200B> everything"}  # hidden characters shown

        # other arguments are not covered by the approval
        approved = cli(config, "approvals", "approve", approval_id)
        assert approved.returncode == 0, approved.stderr
        with pytest.raises(MCPError) as other:
            await client.call_tool("alpha__echo", {"text": "something else"})
        assert other.value.data["reason"] == "approval-required"

        assert text(await client.call_tool("alpha__echo", {"text": "wipe\u200b everything"})) == (
            "wipe everything"  # the zero-width character is stripped on the way back (C8)
        )
        with pytest.raises(MCPError) as again:
            await client.call_tool("alpha__echo", {"text": "wipe\u200b everything"})
        assert again.value.data["reason"] == "approval-required"
        assert again.value.data["approval_id"] != approval_id

    # approving twice, or an unknown id, says so
    assert cli(config, "approvals", "approve", approval_id).returncode == 1
    assert cli(config, "approvals", "deny", "apr_unknown").returncode == 1
    # every step is in the audit trail
    tail = cli(config, "audit", "tail", "-n", "50", "--format", "json")
    steps = [
        json.loads(line).get("extra", {}).get("approval", {}).get("step")
        for line in tail.stdout.splitlines()
        if line.strip()
    ]
    assert steps.count("requested") >= 3 and "consumed" in steps
    assert "approved" in steps  # the decision made on the command line is recorded too


async def test_denied_call_never_reaches_the_upstream(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"alpha": stdio_upstream("alpha")}, risk={"overrides": {"alpha__add": "critical"}}
    )
    async with gateway_client("stdio", config) as client:
        before = await served_calls(client)
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__add", {"a": 1, "b": 2})
        approval_id = caught.value.data["approval_id"]
        denied = cli(config, "approvals", "deny", approval_id)
        assert denied.returncode == 0, denied.stderr
        with pytest.raises(MCPError) as refused:
            await client.call_tool("alpha__add", {"a": 1, "b": 2})
        assert refused.value.data["reason"] == "approval-denied"
        # the only tools/call the upstream saw since `before` is the counting call itself
        assert await served_calls(client) == before + 1
    assert json.loads(cli(config, "approvals", "list", "--format", "json").stdout) == []


async def test_a_flood_of_holds_becomes_rate_limited(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {"alpha": stdio_upstream("alpha")},
        risk={"overrides": {"alpha__echo": "high"}},
        approvals={"max_prompts_per_minute": 3},
    )
    async with gateway_client("stdio", config) as client:
        outcomes = []
        for index in range(5):
            with pytest.raises(MCPError) as caught:
                await client.call_tool("alpha__echo", {"text": str(index)})
            outcomes.append(caught.value.data["reason"])
    assert outcomes == ["approval-required"] * 3 + ["rate-limited"] * 2
    assert len(json.loads(cli(config, "approvals", "list", "--format", "json").stdout)) == 3


async def test_over_http_the_approval_belongs_to_its_principal(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {"alpha": stdio_upstream("alpha")},
        risk={"overrides": {"alpha__echo": "high"}},
        policy={"allow": [{"principal": "*", "tool": "alpha__*"}]},
    )
    with http_gateway(config) as url:
        other_key = mint_key(config, "other")
        async with Client(authenticated(url)) as client, Client(authenticated(url, other_key)) as other:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("alpha__echo", {"text": "x"})
            assert caught.value.data["reason"] == "approval-required"
            [entry] = json.loads(cli(config, "approvals", "list", "--format", "json").stdout)
            assert entry["principal"] == "test"
            assert cli(config, "approvals", "approve", caught.value.data["approval_id"]).returncode == 0
            # the same call by another principal is not covered by test's approval
            with pytest.raises(MCPError) as foreign:
                await other.call_tool("alpha__echo", {"text": "x"})
            assert foreign.value.data["reason"] == "approval-required"
            assert text(await client.call_tool("alpha__echo", {"text": "x"})) == "x"
