"""The real approval guard answered by a human through the client: accept, decline and timeout, in
both protocol eras, with a real stdio upstream that counts the calls it receives (issue 5)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from mcpwarden.audit.log import SqliteAuditLog
from mcpwarden.config import GatewaySettings, ServerSpec, Settings
from mcpwarden.exchange import Identity
from mcpwarden.gateway import Gateway
from tests.support import PYTHON, UPSTREAM_SERVER

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def gateway(tmp_path: Path, timeout: float = 30) -> AsyncIterator[Gateway]:
    settings = Settings(
        servers={
            "alpha": ServerSpec(command=PYTHON, args=(str(UPSTREAM_SERVER),), env={"FIXTURE_NAME": "alpha"})
        },
        state_dir=tmp_path,
        gateway=GatewaySettings(approval_timeout=timeout),
        risk={"overrides": {"alpha__add": "critical"}},  # type: ignore[arg-type]
    )
    audit = SqliteAuditLog(tmp_path / "audit.db")
    gw = Gateway(
        settings,
        transport="stdio",
        audit=audit,
        principal_of=lambda ctx: Identity("alice"),
        session_key_of=lambda ctx, principal: principal,
    )
    try:
        async with gw.running():
            yield gw
    finally:
        audit.close()


def answering(answer: str, prompts: list[str], delay: float = 0.0) -> Any:
    async def elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        prompts.append(params.message)
        await anyio.sleep(delay)
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action=answer)  # type: ignore[arg-type]

    return elicit


async def served(client: Client) -> int:
    result = await client.call_tool("alpha__served", {"method": "tools/call"})
    return int(result.structured_content["result"])  # type: ignore[index]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_accepted_in_the_client_runs_once(tmp_path: Path, mode: str) -> None:
    prompts: list[str] = []
    async with (
        gateway(tmp_path) as gw,
        Client(gw.server, mode=mode, elicitation_callback=answering("accept", prompts)) as client,
    ):
        result = await client.call_tool("alpha__add", {"a": 2, "b": 3})
        assert result.structured_content == {"result": 5}
        again = await client.call_tool("alpha__add", {"a": 2, "b": 3})  # approvals are single use
        assert again.structured_content == {"result": 5}
    assert len(prompts) == 2
    assert "alpha__add" in prompts[0] and "critical" in prompts[0]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("answer", ["decline", "cancel"])
async def test_declined_in_the_client_never_reaches_the_upstream(
    tmp_path: Path, mode: str, answer: str
) -> None:
    prompts: list[str] = []
    async with (
        gateway(tmp_path) as gw,
        Client(gw.server, mode=mode, elicitation_callback=answering(answer, prompts)) as client,
    ):
        before = await served(client)
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__add", {"a": 2, "b": 3})
        assert await served(client) == before + 1  # only the counting call itself
    assert caught.value.data["reason"] == "approval-denied"
    assert len(prompts) == 1


async def test_unanswered_prompt_times_out_as_a_denial(tmp_path: Path) -> None:
    async with (
        gateway(tmp_path, timeout=0.5) as gw,
        Client(gw.server, mode="legacy", elicitation_callback=answering("accept", [], delay=10)) as client,
    ):
        started = time.monotonic()
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__add", {"a": 2, "b": 3})
    assert caught.value.data["reason"] == "approval-denied"
    assert time.monotonic() - started < 5
