"""Startup-command vetting end to end (THREATS A8, C19): nothing runs before a human approves.

The server's command is a harmless shell line that `vet_command` still flags (`sh -c "… && …"`)
and that would create a marker file; the marker proves whether anything was executed.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.support import MCPWARDEN, PYTHON, UPSTREAM_SERVER, gateway_client, stdio_upstream, write_config

pytestmark = pytest.mark.anyio


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCPWARDEN, *args, "-c", str(config)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("approve_with", ["approvals", "pins"])
async def test_flagged_command_waits_for_approval(tmp_path: Path, approve_with: str) -> None:
    marker = tmp_path / "marker"
    script = (
        f"touch {shlex.quote(str(marker))} && exec {shlex.quote(PYTHON)} {shlex.quote(str(UPSTREAM_SERVER))}"
    )
    shelly = {"command": "sh", "args": ["-c", script], "env": {"FIXTURE_NAME": "shelly"}}
    config = write_config(tmp_path, {"shelly": shelly, "alpha": stdio_upstream("alpha")})
    async with gateway_client("stdio", config) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert "alpha__echo" in tools and not any(name.startswith("shelly__") for name in tools)
        assert not marker.exists()  # nothing was executed

        [pending] = json.loads(cli(config, "approvals", "list", "--format", "json").stdout)
        assert pending["kind"] == "startup" and pending["server"] == "shelly"
        assert pending["arguments"]["argv"] == ["sh", "-c", script]
        assert "pins approve shelly" in cli(config, "pins", "list").stdout
        assert not marker.exists()

        if approve_with == "approvals":
            done = cli(config, "approvals", "approve", pending["id"])
        else:
            done = cli(config, "pins", "approve", "shelly")
        assert done.returncode == 0, done.stderr
        with anyio.fail_after(45):  # the gateway retries on its restart backoff
            while "shelly__echo" not in {tool.name for tool in (await client.list_tools()).tools}:
                await anyio.sleep(0.2)
        assert marker.exists()
        result = await client.call_tool("shelly__echo", {"text": "started"})
        assert result.content[0].text == "started"  # type: ignore[union-attr]
