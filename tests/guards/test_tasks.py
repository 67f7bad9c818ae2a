"""Task ownership: a caller reaches only tasks its own calls started (no confused deputy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp_types import CLIENT_CAPABILITIES_META_KEY

from mcpwarden import reasons
from mcpwarden.exchange import Exchange, Identity
from mcpwarden.guards.tasks import TASK_TOOL_KEY, TaskOwnershipGuard
from mcpwarden.tasks import TASKS_EXTENSION
from tests.support import stdio_upstream, write_config
from tests.transport.test_stdio_wire import META, RawStdio

pytestmark = pytest.mark.anyio


def _exchange(method: str, principal: str, server: str, target: str | None) -> Exchange:
    return Exchange(
        method,
        {},
        Identity(principal),
        "http",
        principal,
        "2026-07-28",
        server,
        target,
        f"{server}__{target}",
    )


async def _started(guard: TaskOwnershipGuard, principal: str, result: Any, server: str = "jobs") -> None:
    call = _exchange("tools/call", principal, server, "slow_compute")
    call.result = result
    assert (await guard.check_response(call)).allowed


async def _asks(guard: TaskOwnershipGuard, principal: str, task: str, method: str = "tasks/get") -> str:
    return (await guard.check_request(_exchange(method, principal, "jobs", task))).reason


async def test_only_the_principal_that_started_a_task_reaches_it() -> None:
    guard = TaskOwnershipGuard()
    await _started(guard, "alice", {"resultType": "task", "taskId": "jobs__t-1", "status": "working"})
    for method in ("tasks/get", "tasks/result", "tasks/cancel", "tasks/update"):
        assert await _asks(guard, "alice", "t-1", method) == reasons.OK
        assert await _asks(guard, "bob", "t-1", method) == reasons.UNKNOWN_TASK


async def test_a_guessed_or_foreign_task_is_unknown() -> None:
    guard = TaskOwnershipGuard()
    await _started(guard, "alice", {"resultType": "task", "taskId": "other__t-1"}, server="other")
    assert await _asks(guard, "alice", "t-1") == reasons.UNKNOWN_TASK  # same id, another server
    assert await _asks(guard, "alice", "t-2") == reasons.UNKNOWN_TASK  # never started here
    await _started(guard, "alice", {"content": [], "resultType": "complete"})  # no task in it
    assert await _asks(guard, "alice", "t-3") == reasons.UNKNOWN_TASK
    # An ordinary result that happens to carry a `taskId` key creates no task.
    await _started(guard, "alice", {"content": [], "resultType": "complete", "taskId": "jobs__t-4"})
    assert await _asks(guard, "alice", "t-4") == reasons.UNKNOWN_TASK
    # Nor does an id in any other field: only the `taskId` the gateway exposed is the caller's.
    smuggled = {"resultType": "task", "taskId": "jobs__t-5", "task": {"taskId": "jobs__t-6"}}
    await _started(guard, "alice", smuggled)
    assert await _asks(guard, "alice", "t-5") == reasons.OK
    assert await _asks(guard, "alice", "t-6") == reasons.UNKNOWN_TASK
    await _started(guard, "alice", {"content": [], "task": {"taskId": "jobs__t-7"}})  # 2025 shape
    assert await _asks(guard, "alice", "t-7") == reasons.UNKNOWN_TASK


async def test_a_task_id_handed_out_again_stays_with_its_first_principal() -> None:
    guard = TaskOwnershipGuard()
    await _started(guard, "alice", {"resultType": "task", "taskId": "jobs__t-1"})
    await _started(guard, "alice", {"resultType": "task", "taskId": "jobs__t-1"})  # its owner again
    again = _exchange("tools/call", "bob", "jobs", "slow_compute")
    again.result = {"resultType": "task", "taskId": "jobs__t-1"}
    decision = await guard.check_response(again)
    assert decision.reason == reasons.UPSTREAM_INVALID_REPLY
    assert decision.detail == "the server sent an invalid reply"  # nothing about the other caller
    assert again.metadata["audit"] == {"task_conflict": "jobs__t-1"}
    assert await _asks(guard, "alice", "t-1") == reasons.OK
    assert await _asks(guard, "bob", "t-1") == reasons.UNKNOWN_TASK


async def test_the_creating_tool_is_named_for_the_task_s_answers() -> None:
    guard = TaskOwnershipGuard()
    await _started(guard, "alice", {"resultType": "task", "taskId": "jobs__t-1"})
    poll = _exchange("tasks/get", "alice", "jobs", "t-1")
    assert (await guard.check_request(poll)).allowed
    assert poll.metadata[TASK_TOOL_KEY] == "jobs__slow_compute"


async def test_the_creating_call_s_audit_event_names_the_task() -> None:
    guard = TaskOwnershipGuard()
    call = _exchange("tools/call", "alice", "jobs", "slow_compute")
    call.result = {"resultType": "task", "taskId": "jobs__t-1", "status": "working"}
    assert (await guard.check_response(call)).allowed
    assert call.metadata["audit"]["task_created"] == "jobs__t-1"
    plain = _exchange("tools/call", "alice", "jobs", "slow_compute")
    plain.result = {"content": [], "resultType": "complete"}
    assert (await guard.check_response(plain)).allowed
    assert "audit" not in plain.metadata


async def test_memory_is_bounded() -> None:
    guard = TaskOwnershipGuard(max_tasks=2)
    for task in ("a", "b", "c"):
        await _started(guard, "alice", {"resultType": "task", "taskId": f"jobs__{task}"})
    assert await _asks(guard, "alice", "a") == reasons.UNKNOWN_TASK
    assert await _asks(guard, "alice", "c") == reasons.OK


async def test_one_principal_s_flood_evicts_only_its_own_tasks() -> None:
    guard = TaskOwnershipGuard(max_tasks=4, max_per_principal=2)
    await _started(guard, "alice", {"resultType": "task", "taskId": "jobs__a"})
    for task in range(5):
        await _started(guard, "mallory", {"resultType": "task", "taskId": f"jobs__m{task}"})
    assert await _asks(guard, "alice", "a") == reasons.OK
    assert [await _asks(guard, "mallory", f"m{task}") for task in range(5)] == [reasons.UNKNOWN_TASK] * 3 + [
        reasons.OK
    ] * 2


def test_through_the_gateway_a_guessed_task_id_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    raw = RawStdio(config)
    declared = {**META, CLIENT_CAPABILITIES_META_KEY: {"extensions": {TASKS_EXTENSION: {}}}}
    try:
        for request_id, task_id in enumerate(("alpha__1", "no-server-prefix"), start=1):
            params = {"taskId": task_id, "_meta": declared}
            answer = raw.request(
                {"jsonrpc": "2.0", "id": request_id, "method": "tasks/get", "params": params}
            )
            assert answer["error"]["code"] == -32602
            assert answer["error"]["data"]["reason"] == reasons.UNKNOWN_TASK
        # A modern caller that did not declare the extension does not reach the task surface at all.
        params = {"taskId": "alpha__1", "_meta": META}
        answer = raw.request({"jsonrpc": "2.0", "id": 9, "method": "tasks/cancel", "params": params})
        assert answer["error"]["code"] == -32021
        assert answer["error"]["data"]["requiredCapabilities"] == {"extensions": {TASKS_EXTENSION: {}}}
        assert answer["error"]["data"]["reason"] == reasons.MISSING_CLIENT_CAPABILITY
    finally:
        raw.close()
