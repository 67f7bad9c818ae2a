"""The approvals admin endpoint of `mcpwarden serve`: list and decide over HTTP, admins only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support import MCPWARDEN, authenticated, http_gateway, stdio_upstream, write_config

pytestmark = pytest.mark.anyio


def mint(config: Path, principal: str, *roles: str) -> str:
    args = [*MCPWARDEN, "keys", "create", "--principal", principal, "-c", str(config)]
    for role in roles:
        args += ["--role", role]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip().splitlines()[-1]


async def test_an_admin_approves_over_http_and_the_call_then_succeeds_once(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"alpha": stdio_upstream("alpha")}, risk={"overrides": {"alpha__add": "high"}}
    )
    with http_gateway(config) as url:
        admin = {"Authorization": f"Bearer {mint(config, 'root', 'admin')}"}
        user = {"Authorization": f"Bearer {mint(config, 'bob')}"}
        base = url.replace("/mcp", "/admin/approvals")
        async with Client(authenticated(url)) as client:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("alpha__add", {"a": 1, "b": 2})
            approval_id = caught.value.data["approval_id"]

            assert httpx.get(base + "/").status_code == 401
            assert httpx.get(base + "/", headers=user).status_code == 403
            assert httpx.post(f"{base}/{approval_id}/approve", headers=user).status_code == 403
            listed = httpx.get(base + "/", headers=admin)
            assert listed.status_code == 200 and [a["id"] for a in listed.json()] == [approval_id]
            foreign = httpx.post(
                f"{base}/{approval_id}/approve", headers={**admin, "Origin": "http://evil.example"}
            )
            assert foreign.status_code == 403

            decided = httpx.post(f"{base}/{approval_id}/approve", headers=admin)
            assert decided.status_code == 200
            assert (await client.call_tool("alpha__add", {"a": 1, "b": 2})).structured_content == {
                "result": 3
            }
            with pytest.raises(MCPError):
                await client.call_tool("alpha__add", {"a": 1, "b": 2})  # single use
            assert httpx.post(f"{base}/{approval_id}/approve", headers=admin).status_code == 404
