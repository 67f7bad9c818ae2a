"""The scope guard inside the pipeline: the same per-tool scopes as the HTTP front (A11, D14)."""

from __future__ import annotations

from typing import Any

import pytest

from mcpwarden.config import Settings
from mcpwarden.exchange import Exchange, Identity
from mcpwarden.guards import build_guards
from mcpwarden.guards.scopes import ScopeGuard

pytestmark = pytest.mark.anyio


def settings(tool_scopes: dict[str, str]) -> Settings:
    oauth = {"issuer": "https://as.example", "audience": "https://gw.example/mcp", "jwks_file": "jwks.json"}
    return Settings.model_validate({"auth": {"oauth": {**oauth, "tool_scopes": tool_scopes}}})


def exchange(
    identity: Identity, method: str = "tools/call", tool: str | None = None, result: Any = None
) -> Exchange:
    ex = Exchange(
        method=method, params={}, identity=identity, transport="http", session_key="k", protocol_version="x"
    )
    ex.exposed_name, ex.result = tool, result
    return ex


BASIC = Identity("alice", scopes=frozenset({"mcp:tools-basic"}), method="jwt")
WRITER = Identity("alice", scopes=frozenset({"mcp:tools-basic", "tools:write"}), method="jwt")
KEY = Identity("bob", method="api-key")


class NoCatalog:
    def tool(self, server_id: str, name: str) -> None:
        return None

    def instructions(self, server_id: str) -> None:
        return None

    def server_ids(self) -> tuple[str, ...]:
        return ()


def test_registered_and_off_without_tool_scopes() -> None:
    built = build_guards(settings({"a": "b:c"}), NoCatalog())
    assert sum(isinstance(guard, ScopeGuard) for guard in built) == 1
    assert not any(isinstance(guard, ScopeGuard) for guard in build_guards(Settings(), NoCatalog()))
    assert ScopeGuard.from_settings(Settings()) is None
    assert ScopeGuard.from_settings(settings({"a": "b:c"})) is not None


async def test_missing_scope_is_denied_naming_only_what_that_tool_needs() -> None:
    guard = ScopeGuard.from_settings(
        settings({"notes__write*": "tools:write", "notes__admin*": "notes:admin"})
    )
    assert guard is not None
    ex = exchange(BASIC, tool="notes__write_note")
    decision = await guard.check_request(ex)
    assert not decision.allowed
    assert decision.reason == "insufficient-scope" and dict(decision.data) == {"scope": "tools:write"}
    assert ex.metadata["audit"] == {"scope_needed": "tools:write"}
    elevated = exchange(WRITER, tool="notes__write_note")
    assert (await guard.check_request(elevated)).allowed
    assert elevated.metadata["audit"] == {"scopes_used": "tools:write"}  # the elevation is on the record
    assert (await guard.check_request(exchange(BASIC, tool="notes__search"))).allowed
    assert (await guard.check_request(exchange(KEY, tool="notes__write_note"))).allowed


async def test_listing_hides_what_the_token_cannot_call() -> None:
    guard = ScopeGuard.from_settings(settings({"notes__write*": "tools:write"}))
    assert guard is not None
    tools = [{"name": "notes__search"}, {"name": "notes__write_note"}]
    for identity, expected in ((BASIC, ["notes__search"]), (WRITER, ["notes__search", "notes__write_note"])):
        ex = exchange(identity, method="tools/list", result={"tools": list(tools)})
        assert (await guard.check_response(ex)).allowed
        assert [tool["name"] for tool in ex.result["tools"]] == expected
