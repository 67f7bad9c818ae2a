"""Upstreams that crash, hang, flood or answer too much: the gateway answers and stays up.

THREATS E4 (huge results), E11 (list_changed flood), E13 (slow upstream), E14 (crash mid-call),
E21 (too many in flight), plus list-changed propagation, progress, and the era bridge for
multi round-trip requests.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.support import authenticated, gateway_client, http_gateway, stdio_upstream, write_config

pytestmark = pytest.mark.anyio
# Tools a server adds at run time are withheld for review by default (pinning, THREATS C4);
# these tests are about the notifications, so they trust new tools.
TRUST_NEW_TOOLS = {"new_tools": "trust"}


def _text(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


@pytest.mark.parametrize("front", ["stdio", "http"])
async def test_killed_upstream_fails_in_flight_calls_fast_then_restarts(front: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    async with gateway_client(front, config) as client:
        first_pid = int(_text(await client.call_tool("alpha__pid", {})))
        errors: list[tuple[str, float]] = []
        killed_at = 0.0

        async def slow_call() -> None:
            try:
                await client.call_tool("alpha__slow", {"seconds": 30})
            except MCPError as exc:
                errors.append((exc.data["reason"], time.monotonic() - killed_at))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(slow_call)
                await anyio.sleep(0.5)  # let the five calls reach the upstream
                killed_at = time.monotonic()
                os.kill(first_pid, signal.SIGKILL)

        assert len(errors) == 5
        assert all(reason == "upstream-failed" for reason, _ in errors)
        assert max(elapsed for _, elapsed in errors) < 1.0

        # The supervisor restarts the server, re-initialises and re-lists it.
        with anyio.fail_after(20):
            while True:
                try:
                    second_pid = int(_text(await client.call_tool("alpha__pid", {})))
                    break
                except MCPError:
                    await anyio.sleep(0.1)
        assert second_pid != first_pid
        with pytest.raises(ProcessLookupError):
            os.kill(first_pid, 0)  # reaped: no zombie left behind


async def test_crash_with_partial_line_gives_an_error_not_a_hang(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    async with gateway_client("stdio", config) as client:
        with anyio.fail_after(5), pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__crash", {})
        assert caught.value.data["reason"] == "upstream-failed"


async def test_slow_upstream_times_out_and_gateway_stays_usable(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, gateway={"request_timeout": 1.0})
    async with gateway_client("stdio", config) as client:
        started = time.monotonic()
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__slow", {"seconds": 20})
        assert caught.value.data["reason"] == "upstream-timeout"
        assert time.monotonic() - started < 5
        assert _text(await client.call_tool("alpha__echo", {"text": "still here"})) == "still here"


async def test_oversized_result_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, gateway={"max_result_kb": 64})
    async with gateway_client("stdio", config) as client:
        assert len(_text(await client.call_tool("alpha__big", {"kb": 16}))) == 16 * 1024
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__big", {"kb": 200})
        assert caught.value.data["reason"] == "result-too-large"


async def test_in_flight_cap_refuses_extra_calls_with_busy(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, gateway={"max_in_flight": 2})
    async with gateway_client("stdio", config) as client:
        outcomes: list[str] = []

        async def call() -> None:
            try:
                await client.call_tool("alpha__slow", {"seconds": 1.5})
                outcomes.append("ok")
            except MCPError as exc:
                outcomes.append(exc.data["reason"])

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(call)
        assert sorted(outcomes) == ["ok", "ok"] + ["too-many-in-flight"] * 4
        assert _text(await client.call_tool("alpha__echo", {"text": "free again"})) == "free again"


@pytest.mark.parametrize("front", ["stdio", "http"])
async def test_list_changed_reaches_modern_listeners(front: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, pinning=TRUST_NEW_TOOLS)
    async with gateway_client(front, config) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            await client.call_tool("alpha__grow", {"name": "sprout"})
            with anyio.fail_after(10):
                async for _event in subscription:
                    break
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "alpha__sprout" in names
        assert _text(await client.call_tool("alpha__sprout", {})) == "I am sprout"


@pytest.mark.parametrize("front", ["stdio", "http"])
async def test_list_changed_reaches_legacy_clients(front: str, tmp_path: Path) -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    alpha = stdio_upstream("alpha", legacy_only=True)
    config = write_config(tmp_path, {"alpha": alpha}, pinning=TRUST_NEW_TOOLS)
    async with gateway_client(front, config, "legacy", message_handler=on_message) as client:
        await client.call_tool("alpha__grow", {"name": "shoot"})
        with anyio.fail_after(10):
            await changed.wait()
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "alpha__shoot" in names


async def test_list_changed_flood_costs_few_relists(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, pinning=TRUST_NEW_TOOLS)
    async with gateway_client("stdio", config) as client:
        lists_before = int(_text(await client.call_tool("alpha__served", {"method": "tools/list"})))
        started = time.monotonic()
        for index in range(30):
            await client.call_tool("alpha__grow", {"name": f"t{index}"})
        with anyio.fail_after(10):
            while "alpha__t29" not in {tool.name for tool in (await client.list_tools()).tools}:
                await anyio.sleep(0.1)
        elapsed = time.monotonic() - started
        relists = int(_text(await client.call_tool("alpha__served", {"method": "tools/list"}))) - lists_before
    # 30 notifications, coalesced to at most one re-list per second (plus the one in progress).
    assert 1 <= relists <= elapsed / 1.0 + 2
    assert relists < 30


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("front", ["stdio", "http"])
@pytest.mark.parametrize("answer", ["accept", "decline"])
async def test_upstream_elicitation_reaches_the_client_in_both_eras(
    front: str, mode: str, answer: str, tmp_path: Path
) -> None:
    asked: list[str] = []

    async def elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"ok": True})
        return types.ElicitResult(action="decline")

    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    async with gateway_client(front, config, mode, elicitation_callback=elicit) as client:
        result = await client.call_tool("alpha__confirm", {"action": "launch"})
    assert asked == ["Really launch?"]
    assert _text(result) == ("did launch" if answer == "accept" else "cancelled launch")


@pytest.mark.parametrize("front", ["stdio", "http"])
async def test_progress_is_relayed(front: str, tmp_path: Path) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    async with gateway_client(front, config) as client:
        result = await client.call_tool("alpha__progress", {"steps": 3}, progress_callback=on_progress)
    assert _text(result) == "3 steps"
    # The upstream's last notification may race its own result (the SDK delivers progress from a
    # separate task, directly connected or not): what arrives must be in order, and the first
    # step, two round trips before the end, must have come.
    assert seen[:1] == [1]
    assert seen == sorted(seen) and set(seen) <= {1, 2, 3}


async def test_malformed_upstream_reply_fails_only_its_request(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    async with gateway_client("stdio", config) as client:
        with anyio.fail_after(10), pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__bad_reply", {})
        assert caught.value.code == -32603
        assert caught.value.data["reason"] == "upstream-invalid-reply"
        assert _text(await client.call_tool("alpha__echo", {"text": "fine"})) == "fine"


async def test_stray_foreign_and_multiline_upstream_output_is_dropped(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    async with gateway_client("stdio", config) as client:
        with anyio.fail_after(10):
            assert _text(await client.call_tool("alpha__stray", {})) == "answered"
            assert _text(await client.call_tool("alpha__echo", {"text": "fine"})) == "fine"


async def test_pushed_elicitation_reaches_the_legacy_client_on_its_own_connection(tmp_path: Path) -> None:
    asked: list[str] = []

    async def elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={})

    config = write_config(tmp_path, {"old": stdio_upstream("old", legacy_only=True)})
    with http_gateway(config) as url:
        async with (
            Client(authenticated(url), mode="legacy", elicitation_callback=elicit) as asking,
            Client(authenticated(url), mode="legacy") as silent,
        ):
            result = await asking.call_tool("old__push_elicit", {})
            dedicated_pid = _text(await asking.call_tool("old__pid", {}))
            shared_pid = _text(await silent.call_tool("old__pid", {}))
            refused = await silent.call_tool("old__push_elicit", {})
    assert _text(result) == "answered"
    assert asked == ["Your favourite colour, please"]
    assert dedicated_pid != shared_pid  # the asking client has an upstream process of its own
    assert _text(refused).startswith("refused")


async def test_pushed_elicitation_from_a_legacy_upstream_is_refused(tmp_path: Path) -> None:
    asked: list[str] = []

    async def elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={})

    config = write_config(tmp_path, {"old": stdio_upstream("old", legacy_only=True)})
    async with gateway_client("stdio", config, elicitation_callback=elicit) as client:
        result = await client.call_tool("old__push_elicit", {})
    assert _text(result).startswith("refused")
    assert asked == []


async def test_a_server_can_have_its_own_request_timeout(tmp_path: Path) -> None:
    quick = {**stdio_upstream("quick"), "request_timeout": 1.0}
    config = write_config(
        tmp_path, {"quick": quick, "patient": stdio_upstream("patient")}, gateway={"request_timeout": 30}
    )
    async with gateway_client("stdio", config) as client:
        started = time.monotonic()
        with pytest.raises(MCPError) as caught:
            await client.call_tool("quick__slow", {"seconds": 20})
        assert caught.value.data["reason"] == "upstream-timeout"
        assert time.monotonic() - started < 5
        assert _text(await client.call_tool("patient__slow", {"seconds": 2})) == "slept 2.0"
