"""The policy guard in the real pipeline: listings and calls through an in-process gateway.

The gateway runs in-process (the SDK's in-process client) in front of a real stdio upstream
(tests/fixtures/upstream_server.py); the caller's identity is switched between requests, so one
upstream serves every principal of the table.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcpwarden.audit.log import SqliteAuditLog
from mcpwarden.config import PolicySettings, ServerSpec, Settings
from mcpwarden.exchange import Exchange, Identity
from mcpwarden.gateway import Gateway
from mcpwarden.guards.policy import PolicyGuard
from tests.support import PYTHON, UPSTREAM_SERVER

pytestmark = pytest.mark.anyio

POLICY: dict[str, Any] = {
    "allow": [
        {"principal": "root", "tool": "*"},
        {"principal": "alice", "tool": "alpha__echo"},
        {"principal": "role:dev", "tool": "alpha__*"},
        {"principal": "role:reader", "tool": "alpha__a*"},  # alpha__add and the prompt alpha__ask
        {"principal": "svc-*", "tool": "alpha__echo", "where": {"text": {"hosts": ["example.com"]}}},
        {"principal": "*", "tool": "mcpwarden://alpha/*"},
        {"principal": "bob", "tool": "alpha__add", "scopes": ["tools:write"]},
        {"principal": "careful", "tool": "alpha__*", "risk": ["low"]},  # tiers from the risk classifier
    ],
    "deny": [
        {"principal": "role:contractor", "tool": "alpha__add"},
        {"principal": "mallory", "tool": "*"},
        {"tool": "alpha__crash"},
    ],
}

PRINCIPALS = [
    Identity("root"),
    Identity("alice"),
    Identity("dev", frozenset({"dev"})),
    Identity("reader", frozenset({"reader"})),
    Identity("contractor", frozenset({"dev", "contractor"})),
    Identity("svc-bot"),
    Identity("bob"),
    Identity("bob", scopes=frozenset({"tools:write"})),
    Identity("mallory", frozenset({"dev"})),
    Identity("anonymous"),
    Identity("careful"),
]

# Tools that are safe to really call, with arguments that satisfy every condition in POLICY.
SAFE_CALLS: dict[str, dict[str, Any]] = {
    "alpha__echo": {"text": "https://example.com/"},
    "alpha__add": {"a": 1, "b": 2},
    "alpha__pid": {},
    "alpha__served": {"method": "tools/call"},
    "alpha__big": {"kb": 1},
}


class Caller:
    def __init__(self) -> None:
        self.identity = Identity("root")

    def __call__(self, ctx: Any) -> Identity:
        return self.identity


@asynccontextmanager
async def gateway(
    tmp_path: Path, policy: dict[str, Any] | None, transport: str = "http"
) -> AsyncIterator[tuple[Client, Caller, Gateway]]:
    settings = Settings(
        servers={
            "alpha": ServerSpec(command=PYTHON, args=(str(UPSTREAM_SERVER),), env={"FIXTURE_NAME": "alpha"})
        },
        state_dir=tmp_path,
        policy=PolicySettings.model_validate(policy) if policy is not None else None,
    )
    audit = SqliteAuditLog(tmp_path / "audit.db")
    caller = Caller()
    gw = Gateway(
        settings,
        transport=transport,
        audit=audit,
        principal_of=caller,
        session_key_of=lambda ctx, principal: principal,
    )
    try:
        async with gw.running(), Client(gw.server) as client:
            yield client, caller, gw
    finally:
        audit.close()


def policy_guard(gw: Gateway) -> PolicyGuard:
    return next(guard for guard in gw.guards if isinstance(guard, PolicyGuard))


async def denied(call: Any) -> str | None:
    """The policy reason if the call was refused by policy, else None."""
    try:
        await call
    except MCPError as exc:
        data = exc.error.data if isinstance(exc.error.data, dict) else {}
        if data.get("reason") == "tool-not-permitted":
            return str(data.get("policy_reason"))
        raise
    return None


async def test_listing_and_calling_never_disagree_for_any_principal(tmp_path: Path) -> None:
    async with gateway(tmp_path, POLICY) as (client, caller, gw):
        guard = policy_guard(gw)
        catalog = [tool.name for tool in (await client.list_tools()).tools]
        assert "alpha__crash" not in catalog and "alpha__echo" in catalog  # deny wins even over root's "*"
        for identity in PRINCIPALS:
            caller.identity = identity
            listed = {tool.name for tool in (await client.list_tools()).tools}
            assert listed <= set(catalog)
            for name in catalog:
                # Every tool: the policy's call decision (with arguments that satisfy the conditions).
                exchange_args = SAFE_CALLS.get(name, {})
                exchange = Exchange("tools/call", {}, identity, "http", "k", "2026-07-28")
                call = guard.decide(
                    exchange, "call_tool", "tool", name, exchange_args, guard._tier("tool", name)
                )
                assert call.allowed == (name in listed), (identity, name, call)
            for name, arguments in SAFE_CALLS.items():
                # Safe tools: really called through the gateway.
                reason = await denied(client.call_tool(name, arguments))
                assert (reason is None) == (name in listed), (identity, name, reason)
            prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
            prompt_reason = await denied(client.get_prompt("alpha__ask", {"topic": "x"}))
            assert (prompt_reason is None) == ("alpha__ask" in prompts), identity
            resources = {str(r.uri) for r in (await client.list_resources()).resources}
            uri = "mcpwarden://alpha/fixture://greeting"
            resource_reason = await denied(client.read_resource(uri))
            assert (resource_reason is None) == (uri in resources), identity
            expected_listed = {
                "root": set(catalog),
                "alice": {"alpha__echo"},
                "reader": {"alpha__add"},
                "svc-bot": {"alpha__echo"},
                "mallory": set(),
                "anonymous": set(),
            }
            if identity.name in expected_listed and not identity.scopes:
                assert listed == expected_listed[identity.name], identity
            if identity.name == "careful":  # some, not all: the classifier puts tools in several tiers
                assert listed and listed != set(catalog), listed
        caller.identity = Identity("bob")
        assert "alpha__add" not in {t.name for t in (await client.list_tools()).tools}
        caller.identity = Identity("bob", scopes=frozenset({"tools:write"}))
        assert "alpha__add" in {t.name for t in (await client.list_tools()).tools}


async def test_a_denial_is_a_clear_error_and_is_audited(tmp_path: Path) -> None:
    async with gateway(tmp_path, POLICY) as (client, caller, _):
        caller.identity = Identity("root")
        before = (await client.call_tool("alpha__served", {"method": "tools/call"})).structured_content
        caller.identity = Identity("svc-bot")
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__echo", {"text": "https://evil.example/steal"})
        caller.identity = Identity("root")
        after = (await client.call_tool("alpha__served", {"method": "tools/call"})).structured_content
    error = caught.value
    assert error.error.data["reason"] == "tool-not-permitted"
    assert error.error.data["policy_reason"] == "argument-not-permitted"
    assert error.error.data["argument"] == "text"
    assert "argument 'text' of alpha__echo is not permitted" in error.message
    assert after == {"result": before["result"] + 1}  # the refused call never reached the upstream
    events = [r.event for r in SqliteAuditLog(tmp_path / "audit.db", create=False).tail(100)]
    refused = [e for e in events if e.decision == "deny"]
    assert [(e.principal, e.target, e.guard, e.reason) for e in refused] == [
        ("svc-bot", "echo", "policy", "tool-not-permitted")
    ]
    assert refused[0].extra["policy"]["code"] == "argument-not-permitted"
    allowed = [e for e in events if e.method == "tools/call" and e.decision == "allow"]
    assert allowed[0].extra["policy_rules"] == ["allow[0]"]


async def test_scope_denial_names_the_scopes(tmp_path: Path) -> None:
    async with gateway(tmp_path, POLICY) as (client, caller, _):
        caller.identity = Identity("bob", scopes=frozenset({"tools:read"}))
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__add", {"a": 1, "b": 2})
    assert caught.value.error.data["policy_reason"] == "insufficient-scope"
    assert caught.value.error.data["required_scopes"] == ["tools:write"]


async def test_without_policy_http_gets_nothing(tmp_path: Path) -> None:
    async with gateway(tmp_path, None, transport="http") as (client, caller, _):
        caller.identity = Identity("someone", frozenset({"admin"}))
        assert (await client.list_tools()).tools == []
        assert (await client.list_prompts()).prompts == []
        assert (await client.list_resources()).resources == []
        assert await denied(client.call_tool("alpha__echo", {"text": "x"})) == "no-grant"
        assert await denied(client.read_resource("mcpwarden://alpha/fixture://greeting")) == "no-grant"
        assert await denied(client.get_prompt("alpha__ask", {"topic": "x"})) == "no-grant"


async def test_without_policy_stdio_gets_everything(tmp_path: Path) -> None:
    async with gateway(tmp_path, None, transport="stdio") as (client, caller, _):
        caller.identity = Identity("stdio", method="stdio")
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"alpha__echo", "alpha__crash", "alpha__add"} <= names
        result = await client.call_tool("alpha__echo", {"text": "hi"})
        assert result.content[0].text == "hi"  # type: ignore[union-attr]


async def test_dry_run_allows_but_records_what_it_would_deny(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = {"mode": "dry-run", "allow": [{"principal": "alice", "tool": "alpha__echo"}]}
    async with gateway(tmp_path, policy) as (client, caller, _):
        caller.identity = Identity("eve")
        names = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("alpha__add", {"a": 2, "b": 3})
        caller.identity = Identity("alice")
        await client.call_tool("alpha__echo", {"text": "fine"})
    assert "alpha__add" in names  # nothing hidden
    assert result.structured_content == {"result": 5}  # nothing refused
    events = [r.event for r in SqliteAuditLog(tmp_path / "audit.db", create=False).tail(100)]
    calls = [e for e in events if e.method == "tools/call"]
    assert [e.decision for e in calls] == ["allow", "allow"]
    assert calls[0].extra["policy_dry_run_denied"]["code"] == "no-grant"
    assert "policy_dry_run_denied" not in calls[1].extra
    listing = next(e for e in events if e.method == "tools/list")
    assert "alpha__add" in listing.extra["policy_dry_run_hidden"]
    assert "policy dry-run: would deny alpha__add to eve" in caplog.text


async def test_path_arguments_are_resolved_on_the_gateway(tmp_path: Path) -> None:
    """C18 through the real guard: the fixture's `echo` stands in for a file tool's `path`."""
    root = tmp_path / "allowed_dir"
    root.mkdir()
    (root / "ok.txt").write_text("ok")
    (tmp_path / "allowed_dir_sensitive_credentials").mkdir()
    os.symlink("/etc", root / "etc_link")
    policy = {
        "allow": [{"principal": "files", "tool": "alpha__echo", "where": {"text": {"within": [str(root)]}}}]
    }
    async with gateway(tmp_path, policy) as (client, caller, _):
        caller.identity = Identity("files")
        assert await denied(client.call_tool("alpha__echo", {"text": str(root / "ok.txt")})) is None
        assert await denied(client.call_tool("alpha__echo", {"text": str(root / "new.txt")})) is None
        for escape in (
            str(tmp_path / "allowed_dir_sensitive_credentials" / "key"),
            str(root / "etc_link" / "sudoers"),
            str(root / ".." / "allowed_dir_sensitive_credentials"),
            "ok.txt",
        ):
            assert await denied(client.call_tool("alpha__echo", {"text": escape})) == "argument-not-permitted"


async def test_listings_use_risk_tiers_and_cover_templates() -> None:
    from mcpwarden.policy import PolicyEngine, compile_policy

    policy = PolicySettings.model_validate(
        {
            "allow": [
                {"principal": "*", "tool": "fs__*", "risk": ["low"]},
                {"principal": "*", "tool": "mcpwarden://fs/file:///pub/*"},
            ]
        }
    )
    tiers = {"read_file": "low", "write_file": "high"}
    guard = PolicyGuard(PolicyEngine(compile_policy(policy)), tier_of=lambda server, name: tiers.get(name))
    listing = Exchange("tools/list", {}, Identity("p"), "http", "k", "2026-07-28")
    listing.result = {"tools": [{"name": "fs__read_file"}, {"name": "fs__write_file"}, {"name": "fs__new"}]}
    assert (await guard.check_response(listing)).allowed
    assert [tool["name"] for tool in listing.result["tools"]] == ["fs__read_file"]
    assert listing.metadata["audit"]["policy_hidden"] == 2
    templates = Exchange("resources/templates/list", {}, Identity("p"), "http", "k", "2026-07-28")
    templates.result = {
        "resourceTemplates": [
            {"uriTemplate": "mcpwarden://fs/file:///pub/{name}"},
            {"uriTemplate": "mcpwarden://fs/file:///etc/{name}"},
        ]
    }
    await guard.check_response(templates)
    assert [t["uriTemplate"] for t in templates.result["resourceTemplates"]] == [
        "mcpwarden://fs/file:///pub/{name}"
    ]
    # A call sees the tier the risk guard put in metadata: the same answer as the listing.
    call = Exchange("tools/call", {}, Identity("p"), "http", "k", "2026-07-28")
    call.exposed_name, call.server, call.target, call.arguments = "fs__write_file", "fs", "write_file", {}
    call.metadata["risk_tier"] = "high"
    assert not (await guard.check_request(call)).allowed
    call.metadata = {"risk_tier": "low"}
    call.exposed_name, call.target = "fs__read_file", "read_file"
    assert (await guard.check_request(call)).allowed
    completion = Exchange(
        "completion/complete", {"ref": {"type": "ref/resource"}}, Identity("p"), "http", "k", "x"
    )
    completion.exposed_name, completion.server, completion.target = (
        "mcpwarden://fs/file:///etc/{n}",
        "fs",
        "x",
    )
    assert not (await guard.check_request(completion)).allowed
