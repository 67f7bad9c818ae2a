"""The pipeline: guards in order, answers back in reverse, fail closed, one audit event per exchange.

The gateway runs in-process here (the SDK's in-process client), in front of a real stdio upstream,
with guards written for the test; the audit trail is the real SQLite log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcpwarden.audit.log import SqliteAuditLog
from mcpwarden.config import ServerSpec, Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, Identity, deny, hold
from mcpwarden.gateway import Gateway
from mcpwarden.pipeline import BaseGuard, Guard
from tests.support import PYTHON, UPSTREAM_SERVER

pytestmark = pytest.mark.anyio


class DenyTool(BaseGuard):
    name = "deny-tool"

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.seen: list[str] = []

    async def check_request(self, exchange: Exchange) -> Decision:
        self.seen.append(exchange.method)
        if exchange.exposed_name == self.tool:
            return deny("tool-not-permitted", f"{self.tool} is not for you")
        return ALLOW


class HoldTool(BaseGuard):
    name = "hold"

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.exposed_name == "alpha__slow":
            return hold("approval-required", "a human must approve this", approval_id="ap-1")
        return ALLOW


class Crashes(BaseGuard):
    name = "crashes"

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.exposed_name == "alpha__pid":
            raise RuntimeError("bug in a guard with a secret sk-live-123")
        return ALLOW


class CrashesOnAnswer(BaseGuard):
    name = "crashes-on-answer"

    async def check_response(self, exchange: Exchange) -> Decision:
        if exchange.exposed_name == "alpha__pid":
            raise RuntimeError("bug in a guard with a secret sk-live-456")
        return ALLOW


class Redacts(BaseGuard):
    name = "redacts"

    async def check_response(self, exchange: Exchange) -> Decision:
        result = exchange.result
        if exchange.method == "tools/call":
            for block in result["content"]:
                if block["type"] == "text":
                    block["text"] = block["text"].replace("secret", "[REDACTED]")
            result["structuredContent"] = {"result": block["text"]}
        return ALLOW


class Order(BaseGuard):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def check_request(self, exchange: Exchange) -> Decision:
        self.log.append(f"{self.name}>")
        return ALLOW

    async def check_response(self, exchange: Exchange) -> Decision:
        self.log.append(f"<{self.name}")
        return ALLOW

    def finish(self, exchange: Exchange) -> None:
        self.log.append(f"{self.name}.")


@asynccontextmanager
async def in_process(tmp_path: Path, guards: list[Guard]) -> AsyncIterator[Client]:
    settings = Settings(
        servers={
            "alpha": ServerSpec(command=PYTHON, args=(str(UPSTREAM_SERVER),), env={"FIXTURE_NAME": "alpha"})
        },
        state_dir=tmp_path,
    )
    audit = SqliteAuditLog(tmp_path / "audit.db")
    gateway = Gateway(
        settings,
        transport="stdio",
        extra_guards=guards,
        audit=audit,
        principal_of=lambda ctx: Identity("tester"),
        session_key_of=lambda ctx, principal: principal,
    )
    try:
        async with gateway.running(), Client(gateway.server) as client:
            yield client
    finally:
        audit.close()


def trail(tmp_path: Path) -> SqliteAuditLog:
    return SqliteAuditLog(tmp_path / "audit.db", create=False)


async def test_denial_is_an_error_with_reason_and_never_reaches_upstream(tmp_path: Path) -> None:
    guard = DenyTool("alpha__add")
    async with in_process(tmp_path, [guard]) as client:
        served_before = (await client.call_tool("alpha__served", {"method": "tools/call"})).structured_content
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__add", {"a": 1, "b": 2})
        served_after = (await client.call_tool("alpha__served", {"method": "tools/call"})).structured_content
    error = caught.value
    assert error.data["reason"] == "tool-not-permitted"
    assert error.message == "alpha__add is not for you"
    assert len(error.data["correlation_id"]) == 32
    assert served_after == {"result": served_before["result"] + 1}  # only the counting call itself
    denied = [r.event for r in trail(tmp_path).tail(50) if r.event.decision == "deny"]
    assert [(e.target, e.reason, e.guard) for e in denied] == [("add", "tool-not-permitted", "deny-tool")]
    assert denied[0].correlation_id == error.data["correlation_id"]


async def test_hold_carries_its_data(tmp_path: Path) -> None:
    async with in_process(tmp_path, [HoldTool()]) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__slow", {"seconds": 0})
    assert caught.value.data["reason"] == "approval-required"
    assert caught.value.data["approval_id"] == "ap-1"
    assert trail(tmp_path).tail(1)[0].event.decision == "hold"


@pytest.mark.parametrize("guard", [Crashes(), CrashesOnAnswer()], ids=["on the request", "on the answer"])
async def test_a_crashing_guard_denies_and_leaks_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, guard: Guard
) -> None:
    async with in_process(tmp_path, [guard]) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__pid", {})
        still_works = await client.call_tool("alpha__echo", {"text": "ok"})
    assert caught.value.data["reason"] == "guard-failed"
    assert "sk-live" not in caught.value.message
    assert still_works.content[0].text == "ok"  # type: ignore[union-attr]
    assert "Traceback" not in caplog.text
    assert "sk-live" not in caplog.text
    crashed = [r.event for r in trail(tmp_path).tail(20) if r.event.target == "pid"]
    assert [(e.reason, e.guard) for e in crashed] == [("guard-failed", guard.name)]


async def test_response_guards_may_redact(tmp_path: Path) -> None:
    async with in_process(tmp_path, [Redacts()]) as client:
        result = await client.call_tool("alpha__echo", {"text": "the secret is out"})
    assert result.content[0].text == "the [REDACTED] is out"  # type: ignore[union-attr]


async def test_guards_run_forward_then_in_reverse_then_finish(tmp_path: Path) -> None:
    log: list[str] = []
    async with in_process(tmp_path, [Order("a", log), Order("b", log)]) as client:
        log.clear()
        await client.call_tool("alpha__echo", {"text": "x"})
    assert log[-6:] == ["a>", "b>", "<b", "<a", "a.", "b."]


async def test_one_audit_event_per_exchange_with_digest_not_arguments(tmp_path: Path) -> None:
    async with in_process(tmp_path, []) as client:
        before = len(trail(tmp_path).tail(1000))
        await client.list_tools()
        await client.call_tool("alpha__echo", {"text": "canary-7f3c9e21-argument-value"})
        with pytest.raises(MCPError):
            await client.call_tool("ghost__x", {})
    records = trail(tmp_path).tail(1000)[before:]
    assert [r.event.method for r in records] == ["tools/list", "tools/call", "tools/call"]
    call = records[1].event
    assert (call.principal, call.server, call.target, call.decision, call.reason) == (
        "tester",
        "alpha",
        "echo",
        "allow",
        "ok",
    )
    assert call.argument_digest is not None and len(call.argument_digest) == 64
    assert call.request_bytes > 0 and call.response_bytes > 0 and call.latency_ms > 0
    assert records[2].event.reason == "unknown-tool"
    db = (tmp_path / "audit.db").read_bytes()
    assert b"canary-7f3c9e21" not in db
    assert trail(tmp_path).verify().ok


async def test_invalid_names_from_upstream_are_withheld(tmp_path: Path) -> None:
    from mcpwarden.guards.protocol import ProtocolGuard

    guard = ProtocolGuard()
    exchange = Exchange("tools/list", {}, Identity("p"), "stdio", "s", "2026-07-28")
    schema: dict[str, Any] = {"type": "object"}
    exchange.result = {
        "tools": [
            {"name": "a__read_file", "inputSchema": schema},
            {"name": "a__read_f\u0456le", "inputSchema": schema},
            {"name": "a__x\u200b", "inputSchema": schema},
            {"inputSchema": schema},
        ]
    }
    assert (await guard.check_response(exchange)).allowed
    assert [tool["name"] for tool in exchange.result["tools"]] == ["a__read_file"]


def test_message_sizes_count_integers_beyond_64_bits() -> None:
    # A size of 0 would let such a result slip past max_result_kb limits.
    from mcpwarden.pipeline import _size_of

    assert _size_of({"n": 3**50}) == len(b'{"n":717897987691852588770249}')
    assert _size_of({"n": 1}) == len(b'{"n":1}')
