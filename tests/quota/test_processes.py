"""Quotas across real gateway processes: `mcpwarden stdio` children driven by the real MCP client.

A desktop client starts one stdio gateway per connection, so reconnecting is a new process: the
limits must live in the state directory (SQLite) or in Redis, keyed on the principal. Two gateway
processes sharing one Redis must enforce one combined limit under concurrent load.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from typer.testing import CliRunner

from mcpwarden.cli import app
from tests.support import MCPWARDEN, stdio_gateway_params, stdio_upstream, write_config

pytestmark = pytest.mark.anyio


async def outcome(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    try:
        result = await client.call_tool(tool, arguments)
    except MCPError as exc:
        return str(exc.data["reason"])
    return "error" if result.is_error else "ok"


def usage_json(config: Path, *options: str, process: bool = False) -> list[dict[str, Any]]:
    """`mcpwarden usage --format json`: as a real process, or in this one (faster)."""
    argv = ["usage", "-c", str(config), "--format", "json", *options]
    if process:
        done = subprocess.run([*MCPWARDEN, *argv], capture_output=True, text=True, timeout=60, check=False)
        code, output, errors = done.returncode, done.stdout, done.stderr
    else:
        invoked = CliRunner().invoke(app, argv)
        code, output, errors = invoked.exit_code, invoked.stdout, str(invoked.exception)
    assert code == 0, errors
    rows: list[dict[str, Any]] = json.loads(output)
    return rows


async def test_reconnecting_a_stdio_client_resets_nothing(tmp_path: Path) -> None:
    limits = [{"budget": {"units": 3, "per": "day"}}, {"loop": {"repeats": 2, "window": "1h"}}]
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, limits=limits)
    async with Client(stdio_gateway_params(config)) as client:  # type: ignore[arg-type]
        first = [await outcome(client, "alpha__echo", {"text": "same"}) for _ in range(2)]
    async with Client(stdio_gateway_params(config)) as client:  # type: ignore[arg-type]
        second = [
            await outcome(client, "alpha__echo", {"text": "same"}),
            await outcome(client, "alpha__echo", {"text": "other"}),
            await outcome(client, "alpha__echo", {"text": "more"}),
        ]
    assert first == ["ok", "ok"]
    assert second == ["loop-detected", "ok", "budget-exhausted"]
    assert usage_json(config, process=True) == [
        {
            "principal": "stdio",
            "server": "alpha",
            "tool": "alpha__echo",
            "calls": 3,
            "denied": 2,
            "errors": 0,
            "cost": 3.0,
        }
    ]
    assert usage_json(config, "--by", "server") == [
        {
            "principal": None,
            "server": "alpha",
            "tool": None,
            "calls": 3,
            "denied": 2,
            "errors": 0,
            "cost": 3.0,
        }
    ]
    assert usage_json(config, "--since", "2999-01-01") == []


async def test_two_gateway_processes_share_one_redis_limit(tmp_path: Path, redis_url: str) -> None:
    limits = [
        {"tool": "alpha__echo", "budget": {"units": 12, "per": "day"}},
        {"tool": "alpha__add", "rate": "7/h"},
    ]
    quota = {"backend": "redis", "redis_url": redis_url, "key_prefix": f"test:{uuid.uuid4().hex}:"}
    configs = []
    for name in ("one", "two"):  # separate state directories: only Redis is shared
        folder = tmp_path / name
        folder.mkdir()
        configs.append(write_config(folder, {"alpha": stdio_upstream("alpha")}, limits=limits, quota=quota))
    results: dict[str, list[str]] = {"alpha__echo": [], "alpha__add": []}
    go = anyio.Event()

    async def call(client: Client, tool: str, arguments: dict[str, Any]) -> None:
        await go.wait()
        results[tool].append(await outcome(client, tool, arguments))

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(Client(stdio_gateway_params(config)))  # type: ignore[arg-type]
            for config in configs
        ]
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for client in clients:  # 15 + 10 calls per process, all at once
                    for i in range(15):
                        tg.start_soon(call, client, "alpha__echo", {"text": str(i)})
                    for i in range(10):
                        tg.start_soon(call, client, "alpha__add", {"a": i, "b": 1})
                go.set()
    # Admission is one Lua script per call, so the combined limit holds exactly: no overshoot at all.
    assert sorted(results["alpha__echo"]) == ["budget-exhausted"] * 18 + ["ok"] * 12
    assert sorted(results["alpha__add"]) == ["ok"] * 7 + ["rate-limited"] * 13
    per_gateway = [sum(row["calls"] for row in usage_json(config)) for config in configs]
    assert sum(per_gateway) == 19  # each gateway reports the calls it served
