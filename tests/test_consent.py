"""Held calls answered by a human through the client: MRTR for modern clients, elicitation/create
for legacy ones, an approval id for clients that cannot elicit; signed, bound, single-use state."""

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
from mcpwarden.consent import ConsentBroker, call_digest
from mcpwarden.exchange import ALLOW, Decision, Exchange, Identity, deny, hold
from mcpwarden.gateway import Gateway
from mcpwarden.pipeline import BaseGuard
from tests.support import PYTHON, UPSTREAM_SERVER

pytestmark = pytest.mark.anyio


class AskFirst(BaseGuard):
    """Holds every call of one tool until a human answered; each approval is good for one call."""

    name = "ask-first"

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.answers: dict[str, bool] = {}
        self.counter = 0

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.exposed_name != self.tool:
            return ALLOW
        for approval_id, answer in list(self.answers.items()):
            del self.answers[approval_id]
            return ALLOW if answer else deny("approval-denied", "declined")
        self.counter += 1
        return hold(
            "approval-required",
            "needs a human",
            approval_id=f"ap-{self.counter}",
            prompt=f"Allow {exchange.exposed_name} with {exchange.arguments}?",
        )

    async def resolve(self, approval_id: str, approved: bool, decided_by: str) -> None:
        self.answers[approval_id] = approved


def _answering(answer: str, prompts: list[str], delay: float = 0.0) -> Any:
    async def elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        prompts.append(params.message)
        await anyio.sleep(delay)
        if params.message.startswith("Really"):  # the upstream's own question (alpha__confirm)
            return types.ElicitResult(action="accept", content={"ok": True})
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action="decline")

    return elicit


@asynccontextmanager
async def gateway(tmp_path: Path, guard: AskFirst, timeout: float = 30) -> AsyncIterator[Gateway]:
    settings = Settings(
        servers={
            "alpha": ServerSpec(command=PYTHON, args=(str(UPSTREAM_SERVER),), env={"FIXTURE_NAME": "alpha"})
        },
        state_dir=tmp_path,
        gateway=GatewaySettings(approval_timeout=timeout),
    )
    audit = SqliteAuditLog(tmp_path / "audit.db")
    gw = Gateway(
        settings,
        transport="stdio",
        audit=audit,
        principal_of=lambda ctx: Identity("alice"),
        session_key_of=lambda ctx, p: p,
        extra_guards=[guard],
    )
    try:
        async with gw.running():
            yield gw
    finally:
        audit.close()


async def _served(client: Client) -> int:
    result = await client.call_tool("alpha__served", {"method": "tools/call"})
    return int(result.structured_content["result"])  # type: ignore[index]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_approved_call_goes_through_once(tmp_path: Path, mode: str) -> None:
    guard, prompts = AskFirst("alpha__echo"), []
    async with (
        gateway(tmp_path, guard) as gw,
        Client(gw.server, mode=mode, elicitation_callback=_answering("accept", prompts)) as client,
    ):
        result = await client.call_tool("alpha__echo", {"text": "launch\u200b"})
        # The zero-width character is stripped on the way back (THREATS C8).
        assert result.content[0].text == "launch"  # type: ignore[union-attr]
    assert len(prompts) == 1 and "alpha__echo" in prompts[0]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_declined_call_never_reaches_the_upstream(tmp_path: Path, mode: str) -> None:
    guard, prompts = AskFirst("alpha__echo"), []
    async with (
        gateway(tmp_path, guard) as gw,
        Client(gw.server, mode=mode, elicitation_callback=_answering("decline", prompts)) as client,
    ):
        before = await _served(client)
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__echo", {"text": "x"})
        assert caught.value.data["reason"] == "approval-denied"
        assert await _served(client) == before + 1  # only the counting call itself


async def test_unanswered_legacy_prompt_times_out_as_no(tmp_path: Path) -> None:
    guard, prompts = AskFirst("alpha__echo"), []
    async with (
        gateway(tmp_path, guard, timeout=0.5) as gw,
        Client(
            gw.server, mode="legacy", elicitation_callback=_answering("accept", prompts, delay=5)
        ) as client,
    ):
        started = time.monotonic()
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__echo", {"text": "x"})
    assert caught.value.data["reason"] == "approval-denied"
    assert time.monotonic() - started < 4


async def test_client_without_elicitation_gets_the_approval_id(tmp_path: Path) -> None:
    async with gateway(tmp_path, AskFirst("alpha__echo")) as gw, Client(gw.server) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__echo", {"text": "x"})
    assert caught.value.data["reason"] == "approval-required"
    assert caught.value.data["approval_id"] == "ap-1"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_approval_holds_across_the_upstreams_own_questions(tmp_path: Path, mode: str) -> None:
    guard, prompts = AskFirst("alpha__confirm"), []
    async with (
        gateway(tmp_path, guard) as gw,
        Client(gw.server, mode=mode, elicitation_callback=_answering("accept", prompts)) as client,
    ):
        result = await client.call_tool("alpha__confirm", {"action": "deploy"})
    assert result.content[0].text == "did deploy"  # type: ignore[union-attr]
    assert [p.split(" ")[0] for p in prompts] == ["Allow", "Really"]


def _exchange(principal: str = "alice", text: str = "x") -> Exchange:
    exchange = Exchange("tools/call", {}, Identity(principal), "http", "s", "2026-07-28")
    exchange.exposed_name, exchange.arguments = "alpha__echo", {"text": text}
    return exchange


def test_signed_state_is_bound_single_use_and_tamper_evident(tmp_path: Path) -> None:
    broker = ConsentBroker(tmp_path, timeout=5)
    token = broker.state_for(_exchange(), approval_id="ap-1", approved=False, upstream=None)
    body = _exchange()
    body.params = {"requestState": token}
    assert broker.continuation(body) is not None
    with pytest.raises(MCPError):  # replay
        broker.continuation(body)

    for tampered_exchange in (_exchange(principal="mallory"), _exchange(text="other arguments")):
        fresh = broker.state_for(_exchange(), approval_id="ap-2", approved=False, upstream=None)
        tampered_exchange.params = {"requestState": fresh}
        with pytest.raises(MCPError):
            broker.continuation(tampered_exchange)

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    other = _exchange()
    other.params = {"requestState": forged}
    with pytest.raises(MCPError):
        broker.continuation(other)
    assert broker.verify(forged) is None
    assert (tmp_path / "gateway.key").stat().st_mode & 0o777 == 0o600
    assert call_digest(_exchange()) != call_digest(_exchange(text="y"))
