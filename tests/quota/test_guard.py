"""The quota guard end to end: a real upstream behind the in-process gateway, real MCP client.

Principals are switched per call (`principal_of`), as HTTP authentication would set them; the
audit trail and the counters are the real SQLite files in the state directory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcpwarden.audit.events import AuditEvent
from mcpwarden.audit.log import SqliteAuditLog
from mcpwarden.config import LimitRule, PolicyRule, PolicySettings, QuotaSettings, ServerSpec, Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, Identity, deny
from mcpwarden.gateway import Gateway
from mcpwarden.guards.quota import QuotaGuard
from mcpwarden.guards.tasks import TASK_TOOL_KEY
from mcpwarden.pipeline import BaseGuard, Guard
from mcpwarden.quota.backend import SqliteCounters
from mcpwarden.quota.truncate import json_size
from mcpwarden.quota.usage import usage_report
from tests.support import PYTHON, UPSTREAM_SERVER, free_port

pytestmark = pytest.mark.anyio

ALICE = Identity("alice", roles=frozenset({"dev"}))
BOB = Identity("bob")


class Caller:
    """Who the next request comes from (the in-process client has no credentials of its own)."""

    def __init__(self) -> None:
        self.identity = ALICE


@asynccontextmanager
async def gateway(
    state: Path,
    limits: list[dict[str, Any]],
    caller: Caller | None = None,
    *,
    quota: QuotaSettings | None = None,
    extra_guards: tuple[Guard, ...] = (),
) -> AsyncIterator[Client]:
    settings = Settings(
        servers={
            "alpha": ServerSpec(command=PYTHON, args=(str(UPSTREAM_SERVER),), env={"FIXTURE_NAME": "a"})
        },
        state_dir=state,
        limits=tuple(LimitRule.model_validate(limit) for limit in limits),
        quota=quota or QuotaSettings(),
        policy=PolicySettings(allow=(PolicyRule(),)),
    )
    who = caller or Caller()
    audit = SqliteAuditLog(state / "audit.db")
    gw = Gateway(
        settings,
        transport="stdio",
        audit=audit,
        principal_of=lambda ctx: who.identity,
        session_key_of=lambda ctx, principal: principal,
        extra_guards=extra_guards,
    )
    guard = next(g for g in gw.guards if isinstance(g, QuotaGuard))
    try:
        async with gw.running(), Client(gw.server) as client:
            yield client
    finally:
        await guard.aclose()
        audit.close()


def events(state: Path, method: str = "tools/call") -> list[AuditEvent]:
    with SqliteAuditLog(state / "audit.db", create=False) as log:
        return [r.event for r in log.tail(10_000) if r.event.method == method]


async def refused(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(tool, arguments)
    data: dict[str, Any] = caught.value.data
    data["message"] = caught.value.message
    return data


async def test_a_principal_exhausts_its_budget_while_another_does_not(tmp_path: Path) -> None:
    caller = Caller()
    async with gateway(tmp_path, [{"budget": {"units": 3, "per": "day"}}], caller) as client:
        for i in range(3):
            assert (await client.call_tool("alpha__echo", {"text": str(i)})).is_error is False
        error = await refused(client, "alpha__echo", {"text": "3"})
        caller.identity = BOB
        for i in range(3):
            await client.call_tool("alpha__echo", {"text": str(i)})
        caller.identity = ALICE
        again = await refused(client, "alpha__echo", {"text": "4"})
    assert error["reason"] == again["reason"] == "budget-exhausted"
    assert 0 < error["retry_after"] <= 86400
    assert "3 cost units per day" in error["message"] and "renews at" in error["message"]
    calls = events(tmp_path)
    assert [(e.principal, e.decision, e.extra["cost"]) for e in calls] == [
        *[("alice", "allow", 1.0)] * 3,
        ("alice", "deny", 0.0),
        *[("bob", "allow", 1.0)] * 3,
        ("alice", "deny", 0.0),
    ]
    assert calls[3].guard == "quota" and calls[3].reason == "budget-exhausted"


async def test_reconnecting_or_restarting_resets_nothing(tmp_path: Path) -> None:
    limits = [
        {"budget": {"units": 5, "per": "month"}},
        {"tool": "alpha__add", "rate": "2/h"},
        {"loop": {"repeats": 2, "window": "1h"}},
    ]
    async with gateway(tmp_path, limits) as client:
        await client.call_tool("alpha__echo", {"text": "same"})
        await client.call_tool("alpha__echo", {"text": "same"})
        await client.call_tool("alpha__add", {"a": 1, "b": 1})
    # A new gateway on the same state directory: a new process, a new session, the same principal.
    async with gateway(tmp_path, limits) as client:
        loop = await refused(client, "alpha__echo", {"text": "same"})
        await client.call_tool("alpha__add", {"a": 2, "b": 2})
        rate = await refused(client, "alpha__add", {"a": 3, "b": 3})
        budget_left = await client.call_tool("alpha__echo", {"text": "other"})
        budget = await refused(client, "alpha__echo", {"text": "more"})
    assert loop["reason"] == "loop-detected" and 0 < loop["retry_after"] <= 3600
    assert rate["reason"] == "rate-limited" and 1700 < rate["retry_after"] <= 1800
    assert budget_left.is_error is False
    assert budget["reason"] == "budget-exhausted"


async def test_the_loop_breaker_trips_and_releases(tmp_path: Path) -> None:
    async with gateway(tmp_path, [{"loop": {"repeats": 2, "window": "1s"}}]) as client:
        started = time.monotonic()
        for _ in range(2):
            await client.call_tool("alpha__echo", {"text": "again"})
        error = await refused(client, "alpha__echo", {"text": "again"})
        await client.call_tool("alpha__echo", {"text": "something else"})
        deadline = time.monotonic() + 10
        while True:  # released once the window has passed; poll, never a fixed sleep
            try:
                await client.call_tool("alpha__echo", {"text": "again"})
                break
            except MCPError as exc:
                assert exc.data["reason"] == "loop-detected"
                assert time.monotonic() < deadline, "the loop breaker never released"
                await anyio.sleep(0.05)
        released_after = time.monotonic() - started
    assert error["reason"] == "loop-detected" and 0 < error["retry_after"] <= 1
    assert "2 times within 1 s" in error["message"]
    assert released_after >= 0.9


async def test_a_huge_result_is_refused_by_default(tmp_path: Path) -> None:
    async with gateway(tmp_path, [{"tool": "alpha__big", "max_result_kb": 64}]) as client:
        error = await refused(client, "alpha__big", {"kb": 2048})  # 2 MB of text, twice over
        small = await client.call_tool("alpha__big", {"kb": 16})
    assert error["reason"] == "result-too-large" and error["limit_kb"] == 64
    assert small.is_error is False
    denied = events(tmp_path)[0]
    assert denied.guard == "quota" and denied.response_bytes > 4 * 1024 * 1024


async def test_a_huge_result_is_truncated_when_asked(tmp_path: Path) -> None:
    limits = [{"tool": "alpha__big", "max_result_kb": 64, "on_large_result": "truncate"}]
    async with gateway(tmp_path, limits) as client:
        result = await client.call_tool("alpha__big", {"kb": 2048})  # validated against its output schema
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("xxxx") and text.endswith("over the 64 KB limit]")
    assert 16 * 1024 < len(text) < 64 * 1024
    assert isinstance(result.structured_content, dict) and result.structured_content["result"].endswith("]")
    event = events(tmp_path)[0]
    assert event.decision == "allow" and event.response_bytes <= 64 * 1024
    assert event.extra["truncated"]["from_bytes"] > 4 * 1024 * 1024


async def test_cost_per_call_and_per_kb_go_into_the_audit_event(tmp_path: Path) -> None:
    limits = [{"cost": 2, "cost_per_kb": 0.5}, {"tool": "alpha__big", "cost": 3}]
    async with gateway(tmp_path, limits) as client:
        await client.call_tool("alpha__big", {"kb": 10})
        await client.call_tool("alpha__add", {"a": 1, "b": 2})
        await client.list_tools()
    big, add = events(tmp_path)
    assert big.extra["cost"] == round(3 + 0.5 * big.response_bytes / 1024, 6)
    assert big.extra["cost"] > 3 + 0.5 * 20  # 10 KB twice: content and structuredContent
    assert add.extra["cost"] == round(2 + 0.5 * add.response_bytes / 1024, 6)
    assert "cost" not in events(tmp_path, "tools/list")[0].extra  # listings are not metered


async def test_rate_limit_and_role_rules(tmp_path: Path) -> None:
    caller = Caller()
    limits = [{"principal": "role:dev", "tool": "alpha__*", "rate": "2/h"}]
    async with gateway(tmp_path, limits, caller) as client:
        await client.call_tool("alpha__add", {"a": 1, "b": 1})
        await client.call_tool("alpha__echo", {"text": "x"})
        error = await refused(client, "alpha__add", {"a": 1, "b": 2})
        caller.identity = BOB  # no role dev: the rule does not apply
        for _ in range(4):
            await client.call_tool("alpha__add", {"a": 1, "b": 1})
    assert error["reason"] == "rate-limited" and 1790 < error["retry_after"] <= 1800
    assert error["limit"] == 1


class Gate(BaseGuard):
    """Runs after the quota guard: says when a slow call has been admitted and is on its way."""

    name = "gate"

    def __init__(self) -> None:
        self.admitted = anyio.Event()

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.exposed_name == "alpha__slow":
            self.admitted.set()
        return ALLOW


async def test_concurrency_cap_is_per_principal_and_released(tmp_path: Path) -> None:
    caller, gate = Caller(), Gate()
    async with gateway(tmp_path, [{"concurrency": 1}], caller, extra_guards=(gate,)) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "alpha__slow", {"seconds": 1.0})
            with anyio.fail_after(10):
                await gate.admitted.wait()
            busy = await refused(client, "alpha__echo", {"text": "x"})
            caller.identity = BOB
            await client.call_tool("alpha__echo", {"text": "bob is not alice"})
            caller.identity = ALICE
        await client.call_tool("alpha__echo", {"text": "after"})  # the slot came back
    assert busy["reason"] == "too-many-in-flight" and "retry_after" not in busy


class DenyAdd(BaseGuard):
    name = "deny-add"

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.exposed_name == "alpha__add":
            return deny("tool-not-permitted", "no adding")
        return ALLOW


async def test_a_call_no_limit_matches_costs_the_default_and_is_not_capped(tmp_path: Path) -> None:
    limits = [{"tool": "alpha__echo", "max_result_kb": 1, "cost": 5}]
    async with gateway(tmp_path, limits, extra_guards=(DenyAdd(),)) as client:
        big = await client.call_tool("alpha__big", {"kb": 16})  # over a cap that is not its own
        await refused(client, "alpha__add", {"a": 1, "b": 1})
    assert big.is_error is False
    allowed, refused_later = events(tmp_path)
    assert allowed.extra["cost"] == 1.0 and allowed.response_bytes > 16 * 1024
    assert refused_later.extra["cost"] == 0.0


async def test_a_call_refused_after_admission_costs_nothing(tmp_path: Path) -> None:
    limits = [{"budget": {"units": 2, "per": "day"}}]
    async with gateway(tmp_path, limits, extra_guards=(DenyAdd(),)) as client:
        for _ in range(3):
            assert (await refused(client, "alpha__add", {"a": 1, "b": 1}))["reason"] == "tool-not-permitted"
        deadline = time.monotonic() + 5
        while True:  # refunds run as their own task once the exchange is over
            try:
                await client.call_tool("alpha__echo", {"text": "1"})
                await client.call_tool("alpha__echo", {"text": "2"})
                break
            except MCPError:
                assert time.monotonic() < deadline
                await anyio.sleep(0.02)
    assert [e.extra["cost"] for e in events(tmp_path)][:3] == [0.0, 0.0, 0.0]


async def test_crossing_80_percent_writes_one_alert(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mcpwarden.guards.quota")
    async with gateway(tmp_path, [{"budget": {"units": 5, "per": "hour"}}]) as client:
        for i in range(5):
            await client.call_tool("alpha__echo", {"text": str(i)})
    alerts = [e.extra.get("quota_alerts") for e in events(tmp_path)]
    assert alerts[:3] == [None, None, None] and alerts[4] is None
    assert alerts[3] == [{"limit": 1, "scope": "principal", "per": "hour", "used": 4.0, "units": 5.0}]
    lines = [r.getMessage() for r in caplog.records if "budget alert" in r.getMessage()]
    assert len(lines) == 1 and "alice spent 4 of 5 cost units per hour" in lines[0]


async def test_an_unreachable_backend_fails_closed(tmp_path: Path) -> None:
    quota = QuotaSettings(backend="redis", redis_url=f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    async with gateway(tmp_path, [{"rate": "100/s"}], quota=quota) as client:
        error = await refused(client, "alpha__echo", {"text": "x"})
        assert (await client.list_tools()).tools  # unmetered requests still work
    assert error["reason"] == "guard-failed"


async def test_usage_report_from_the_audit_trail(tmp_path: Path) -> None:
    caller = Caller()
    limits = [{"budget": {"units": 2, "per": "day"}}, {"tool": "alpha__add", "cost": 0.5}]
    async with gateway(tmp_path, limits, caller) as client:
        await client.call_tool("alpha__echo", {"text": "1"})
        await client.call_tool("alpha__add", {"a": 1, "b": 1})
        await client.call_tool("alpha__add", {"a": 1, "b": 2})
        await refused(client, "alpha__echo", {"text": "over"})
        caller.identity = BOB
        await client.call_tool("alpha__echo", {"text": "bob"})
    rows = [row.to_dict() for row in usage_report(tmp_path / "audit.db")]
    assert rows == [
        {
            "principal": "alice",
            "server": "alpha",
            "tool": "alpha__add",
            "calls": 2,
            "denied": 0,
            "errors": 0,
            "cost": 1.0,
        },
        {
            "principal": "alice",
            "server": "alpha",
            "tool": "alpha__echo",
            "calls": 1,
            "denied": 1,
            "errors": 0,
            "cost": 1.0,
        },
        {
            "principal": "bob",
            "server": "alpha",
            "tool": "alpha__echo",
            "calls": 1,
            "denied": 0,
            "errors": 0,
            "cost": 1.0,
        },
    ]
    by_principal = [row.to_dict() for row in usage_report(tmp_path / "audit.db", by=("principal",))]
    assert [(r["principal"], r["server"], r["tool"], r["calls"], r["cost"]) for r in by_principal] == [
        ("alice", None, None, 3, 2.0),
        ("bob", None, None, 1, 1.0),
    ]
    assert usage_report(tmp_path / "audit.db", since=time.time() + 60) == []


def test_usage_adds_a_task_s_result_charge_to_the_tool_that_created_it(tmp_path: Path) -> None:
    def event(method: str, target: str, extra: dict[str, Any]) -> AuditEvent:
        return AuditEvent(
            time=time.time(),
            correlation_id=f"c-{method}-{target}",
            principal="alice",
            transport="http",
            method=method,
            server="jobs",
            target=target,
            argument_digest=None,
            decision="allow",
            reason="ok",
            detail="",
            latency_ms=1.0,
            request_bytes=10,
            response_bytes=10,
            extra=extra,
        )

    trail = SqliteAuditLog(tmp_path / "audit.db")
    trail.append(event("tools/call", "slow", {"cost": 1.0}))  # created the task
    trail.append(event("tasks/get", "t-1", {}))  # still working: nothing charged
    trail.append(event("tasks/get", "t-1", {"cost": 2.5, TASK_TOOL_KEY: "jobs__slow"}))
    trail.close()
    [row] = usage_report(tmp_path / "audit.db")
    assert (row.tool, row.calls, row.cost) == ("jobs__slow", 1, 3.5)
    [by_principal] = usage_report(tmp_path / "audit.db", by=("principal",))
    assert (by_principal.principal, by_principal.calls, by_principal.cost) == ("alice", 1, 3.5)


async def test_a_thousand_calls_a_minute_are_throttled(tmp_path: Path) -> None:
    """THREATS LLM10: 1,000 calls/min → throttled (bounded: refusals are cheap and answered at once)."""
    async with gateway(tmp_path, [{"rate": "60/h"}]) as client:
        started = time.monotonic()
        outcomes = []
        for i in range(1000):
            try:
                await client.call_tool("alpha__add", {"a": i, "b": 1})
                outcomes.append("ok")
            except MCPError as exc:
                outcomes.append(exc.data["reason"])
        elapsed = time.monotonic() - started
    assert outcomes[:60] == ["ok"] * 60
    assert outcomes[60:] == ["rate-limited"] * 940
    assert elapsed < 60  # well within the minute: it is the limit that throttles, not slowness


def _task_poll(text: str, created_by: str = "alpha__big") -> Exchange:
    exchange = Exchange("tasks/get", {}, ALICE, "http", "alice", "2026-07-28", "alpha", "t-1", "alpha__t-1")
    exchange.metadata[TASK_TOOL_KEY] = created_by  # as the task ownership guard leaves it
    inlined = {"content": [{"type": "text", "text": text}], "isError": False}
    exchange.result = {
        "resultType": "complete",
        "taskId": "alpha__t-1",
        "status": "completed",
        "result": inlined,
    }
    exchange.response_bytes = len(text) + 200
    return exchange


def _no_backend() -> Any:
    raise AssertionError("polling a task is not metered")


@pytest.mark.parametrize("on_large_result", ["deny", "truncate"])
async def test_a_task_s_result_is_held_to_the_cap_of_the_tool_that_created_it(on_large_result: str) -> None:
    rule = {"tool": "alpha__big", "max_result_kb": 1, "on_large_result": on_large_result}
    guard = QuotaGuard((LimitRule.model_validate(rule),), _no_backend)
    small, big, other = _task_poll("x" * 100), _task_poll("x" * 4096), _task_poll("x" * 4096, "alpha__echo")
    assert (await guard.check_response(small)).allowed
    assert (await guard.check_response(other)).allowed  # another tool, no cap
    decision = await guard.check_response(big)
    if on_large_result == "deny":
        assert decision.reason == "result-too-large" and decision.data["limit_kb"] == 1
    else:
        assert decision.allowed
        text = big.result["result"]["content"][0]["text"]
        assert text.endswith("over the 1 KB limit]") and len(text) < 1024
        assert big.result["taskId"] == "alpha__t-1" and big.result["status"] == "completed"
        assert big.metadata["audit"]["truncated"]["from_bytes"] > 4096


@pytest.mark.parametrize("on_large_result", ["deny", "truncate"])
async def test_a_legacy_session_s_task_result_is_held_to_the_same_cap(on_large_result: str) -> None:
    """The 2025-11-25 `tasks/result` answers with the task's `tools/call` result itself."""
    rule = {"tool": "alpha__big", "max_result_kb": 1, "on_large_result": on_large_result}
    guard = QuotaGuard((LimitRule.model_validate(rule),), _no_backend)
    exchange = _task_poll("x" * 4096)
    exchange.method, exchange.protocol_version = "tasks/result", "2025-11-25"
    exchange.result = exchange.result["result"]
    exchange.response_bytes = json_size(exchange.result)
    decision = await guard.check_response(exchange)
    if on_large_result == "deny":
        assert decision.reason == "result-too-large" and decision.data["limit_kb"] == 1
    else:
        assert decision.allowed
        text = exchange.result["content"][0]["text"]
        assert text.endswith("over the 1 KB limit]") and len(text) < 1024
        assert exchange.response_bytes == json_size(exchange.result) <= 1024


async def test_a_task_s_result_is_charged_per_kb_when_it_arrives(tmp_path: Path) -> None:
    """The call that creates a task returns a few bytes; its result comes in `tasks/get`. The cost
    per KB is charged on that result, or a tool run as a task would escape a budget of KB."""
    rule = {"tool": "alpha__big", "cost_per_kb": 1, "budget": {"units": 5, "per": "day"}}
    guard = QuotaGuard((LimitRule.model_validate(rule),), lambda: SqliteCounters(tmp_path / "quota.db"))
    try:
        call = Exchange("tools/call", {}, ALICE, "http", "alice", "2026-07-28", "alpha", "big", "alpha__big")
        assert (await guard.check_request(call)).allowed  # 1 unit reserved: the default call cost
        working = _task_poll("")
        working.result = {key: value for key, value in working.result.items() if key != "result"}
        assert (await guard.check_response(working)).allowed
        assert "audit" not in working.metadata  # nothing delivered, nothing charged
        done = _task_poll("x" * 5000)
        kb = json_size(done.result["result"]) / 1024
        assert (await guard.check_response(done)).allowed
        assert done.metadata["audit"]["cost"] == round(kb, 6)
        assert done.metadata["audit"][TASK_TOOL_KEY] == "alpha__big"  # for `mcpwarden usage`
        again = Exchange("tools/call", {}, ALICE, "http", "alice", "2026-07-28", "alpha", "big", "alpha__big")
        assert (await guard.check_request(again)).reason == "budget-exhausted"  # 1 reserved + ~5 KB > 5
    finally:
        await guard.aclose()
