"""The fast lane's requests to a stdio child: replies matched by id, errors, timeouts, a dead pipe."""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from mcpwarden import reasons
from mcpwarden.upstream.stdio import WireRequests

pytestmark = pytest.mark.anyio


class Pipe:
    """Stands in for the child's stdin: records what was written."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    async def write(self, data: bytes) -> None:
        assert data.endswith(b"\n")
        self.lines.append(json.loads(data))


async def _answer_when_written(wire: WireRequests, pipe: Pipe, reply: dict[str, Any]) -> None:
    while not pipe.lines:
        await anyio.sleep(0)
    request_id = pipe.lines[-1]["id"]
    assert wire.take_reply(json.dumps({"jsonrpc": "2.0", "id": request_id, **reply}).encode())


async def _send_with_reply(reply: dict[str, Any]) -> dict[str, Any]:
    pipe = Pipe()
    wire = WireRequests(pipe.write)
    failure: MCPError | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_answer_when_written, wire, pipe, reply)
        try:
            return await wire.send("tools/call", {"name": "echo"}, timeout=5)
        except MCPError as exc:  # raised outside the task group, not wrapped in a group
            failure = exc
    assert failure is not None
    raise failure


async def test_the_reply_with_our_id_is_the_result() -> None:
    assert await _send_with_reply({"result": {"content": []}}) == {"content": []}


async def test_an_error_reply_raises_with_the_upstreams_code() -> None:
    with pytest.raises(MCPError) as caught:
        await _send_with_reply({"error": {"code": -32602, "message": "no such tool", "data": {"x": 1}}})
    assert (caught.value.code, caught.value.message, caught.value.error.data) == (
        -32602,
        "no such tool",
        {"x": 1},
    )


@pytest.mark.parametrize(
    "reply",
    [{"result": {}, "error": {"code": 1, "message": "x"}}, {"result": "text"}, {"error": "text"}, {}],
)
async def test_a_malformed_reply_fails_its_request(reply: dict[str, Any]) -> None:
    with pytest.raises(MCPError) as caught:
        await _send_with_reply(reply)
    assert caught.value.code == types.INTERNAL_ERROR
    assert caught.value.error.data["reason"] == reasons.UPSTREAM_INVALID_REPLY


async def test_lines_that_are_not_our_replies_are_left_to_the_sdk() -> None:
    wire = WireRequests(Pipe().write)
    assert not wire.take_reply(b'{"jsonrpc":"2.0","id":1,"result":{}}')  # nothing waiting
    pipe = Pipe()
    wire = WireRequests(pipe.write)
    async with anyio.create_task_group() as tg:

        async def probe() -> None:
            while not pipe.lines:
                await anyio.sleep(0)
            ours = pipe.lines[0]["id"]
            assert not wire.take_reply(b'{"jsonrpc":"2.0","id":1,"result":{}}')  # the SDK's id
            assert not wire.take_reply(b'{"jsonrpc":"2.0","id":"mcpwarden-999","result":{}}')
            assert not wire.take_reply(b'{"jsonrpc":"2.0","method":"x","params":{"id":"%s"}}' % ours.encode())
            assert not wire.take_reply(b"mcpwarden- not json")
            wire.take_reply(json.dumps({"jsonrpc": "2.0", "id": ours, "result": {"ok": 1}}).encode())

        tg.start_soon(probe)
        assert await wire.send("tools/call", {}, timeout=5) == {"ok": 1}


async def test_a_timeout_cancels_the_request_upstream() -> None:
    pipe = Pipe()
    wire = WireRequests(pipe.write)
    with pytest.raises(MCPError) as caught:
        await wire.send("tools/call", {"name": "slow"}, timeout=0.05)
    assert caught.value.code == types.REQUEST_TIMEOUT
    request, notice = pipe.lines
    assert notice["method"] == "notifications/cancelled"
    assert notice["params"]["requestId"] == request["id"]


async def test_a_cancelled_caller_cancels_the_request_upstream() -> None:
    pipe = Pipe()
    wire = WireRequests(pipe.write)
    with anyio.move_on_after(0.05):
        await wire.send("tools/call", {"name": "slow"}, timeout=5)
    assert [line.get("method") for line in pipe.lines] == ["tools/call", "notifications/cancelled"]


async def test_when_the_child_exits_every_waiter_fails_at_once() -> None:
    pipe = Pipe()
    wire = WireRequests(pipe.write)
    failures: list[int] = []

    async def call() -> None:
        with pytest.raises(MCPError) as caught:
            await wire.send("tools/call", {}, timeout=30)
        failures.append(caught.value.code)

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(call)
            while len(pipe.lines) < 3:
                await anyio.sleep(0)
            wire.close()
    assert failures == [types.CONNECTION_CLOSED] * 3
    with pytest.raises(MCPError):
        await wire.send("tools/call", {}, timeout=1)  # and nothing is written to a dead pipe
    assert len(pipe.lines) == 3
