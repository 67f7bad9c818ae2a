"""The audit trail end to end: every exchange through a real gateway is recorded, chained, and
survives `kill -9` of the gateway; `mcpwarden audit verify` tells an intact trail from a broken one."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.support import (
    MCPWARDEN,
    authenticated,
    http_gateway,
    http_gateway_process,
    stdio_upstream,
    write_config,
)

pytestmark = pytest.mark.anyio


def audit(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MCPWARDEN, "audit", *args, "-c", str(config)], capture_output=True, text=True, timeout=60
    )


async def test_every_call_is_recorded_and_survives_kill_9(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    answered: list[str] = []
    with http_gateway_process(config) as (url, gateway):
        async with Client(authenticated(url)) as client:
            for index in range(20):
                result = await client.call_tool("alpha__echo", {"text": f"call-{index}"})
                answered.append(result.content[0].text)  # type: ignore[union-attr]
            # The gateway commits in batches within gateway.audit_commit_ms (10 ms): past that window
            # every answered call must be on disk, with no shutdown and no flush.
            await anyio.sleep(0.2)
            gateway.send_signal(signal.SIGKILL)
            gateway.wait(10)

    assert len(answered) == 20
    verify = audit(config, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    tail = audit(config, "tail", "-n", "200", "--format", "json")
    events = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    calls = [e for e in events if "tools/call" in json.dumps(e)]
    assert len(calls) == 20


def test_verify_detects_an_edited_record(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    with http_gateway(config) as url:

        async def some_calls() -> None:
            async with Client(authenticated(url)) as client:
                for _ in range(3):
                    await client.call_tool("alpha__add", {"a": 1, "b": 1})

        anyio.run(some_calls)
    assert audit(config, "verify").returncode == 0
    database = tmp_path / "state" / "audit.db"
    with sqlite3.connect(database) as connection:
        triggers = [
            row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        ]
        for trigger in triggers:  # an attacker with the file drops the guard rails first
            connection.execute(f'DROP TRIGGER "{trigger}"')
        connection.execute("UPDATE audit_log SET principal = 'someone-else' WHERE seq = 2")
    result = audit(config, "verify")
    assert result.returncode == 1
