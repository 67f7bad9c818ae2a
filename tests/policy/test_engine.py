"""The decision function: truth tables of principals x names x arguments, compiled to Cedar.

Every case goes through the real engine (cedarpy); nothing here touches the file system except
the Cedar-file cases, which write their file first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcpwarden.config import PolicySettings, Settings
from mcpwarden.errors import ConfigError
from mcpwarden.policy import (
    ALLOWED,
    ARGUMENT_NOT_PERMITTED,
    DENIED_BY_RULE,
    INSUFFICIENT_SCOPE,
    NO_GRANT,
    POLICY_ERROR,
    PolicyEngine,
    PolicyRequest,
    PrincipalFacts,
    ResourceRef,
    compile_policy,
    with_resolved_paths,
)

POLICY: dict[str, Any] = {
    "allow": [
        {"principal": "stdio", "tool": "*"},
        {"principal": "alice", "tool": "notes__*"},
        {"principal": "role:dev", "tool": "fs__*", "where": {"path": {"within": ["/srv/data"]}}},
        {"principal": "role:data-*", "tool": "db__query", "where": {"sql": {"sql": "read-only"}}},
        {
            "principal": "ci-*",
            "tool": "http__fetch",
            "where": {"url": {"hosts": ["example.com", "*.example.org"]}},
        },
        {"principal": "*", "tool": "mail__send", "where": {"to": {"recipients": ["*@example.com"]}}},
        {"principal": "bob", "tool": "deploy__run", "scopes": ["tools:write"]},
        {"principal": "*", "tool": "clock__now"},
        {"principal": "*", "tool": "mcpwarden://notes/*"},
        {"principal": "role:dev", "tool": "notes__summarize"},
    ],
    "deny": [
        {"principal": "role:contractor", "tool": "fs__*"},
        {"principal": "mallory", "tool": "*"},
        {"tool": "fs__delete*"},
        # A guard-rail: notes__add_note calls whose `title` is not an example.com address are refused.
        {"tool": "notes__add_note", "where": {"title": {"recipients": ["*@example.com"]}}},
    ],
}

ALICE = PrincipalFacts("alice")
DEV = PrincipalFacts("dora", frozenset({"dev"}))
DEV_CONTRACTOR = PrincipalFacts("carl", frozenset({"dev", "contractor"}))
ANALYST = PrincipalFacts("ana", frozenset({"data-analyst"}))
CI = PrincipalFacts("ci-runner")
BOB = PrincipalFacts("bob")
BOB_WRITE = PrincipalFacts("bob", scopes=frozenset({"tools:write"}))
BOB_WRONG_SCOPE = PrincipalFacts("bob", scopes=frozenset({"tools:write-all", "tools"}))
MALLORY = PrincipalFacts("mallory", frozenset({"dev"}))
STDIO = PrincipalFacts("stdio", method="stdio")
NOBODY = PrincipalFacts("nobody")


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(compile_policy(PolicySettings.model_validate(POLICY), realpath=lambda p: p))


def ask(
    engine: PolicyEngine,
    principal: PrincipalFacts,
    name: str,
    arguments: dict[str, Any] | None = None,
    action: str = "call_tool",
    transport: str = "http",
) -> Any:
    kind = "resource" if name.startswith("mcpwarden://") else "tool"
    server = name.split("__")[0] if kind == "tool" else name.split("/")[2]
    request = PolicyRequest(principal, action, ResourceRef(server, name, kind), arguments, transport)
    # Lexical resolution (identity) keeps these tables free of file-system state.
    return engine.decide(with_resolved_paths(engine, request, realpath=lambda p: p))


TRUTH_TABLE = [
    # principal, name, arguments, allowed, code
    (ALICE, "notes__search", None, True, ALLOWED),
    (ALICE, "notes__add_note", {"title": "x@example.com"}, True, ALLOWED),
    (ALICE, "notes__add_note", {"title": "x@evil.com"}, False, ARGUMENT_NOT_PERMITTED),  # deny with where
    (ALICE, "fs__read_file", {"path": "/srv/data/a"}, False, NO_GRANT),
    (ALICE, "clock__now", None, True, ALLOWED),
    (ALICE, "clock__now_utc", None, False, NO_GRANT),  # exact name, no glob
    (DEV, "fs__read_file", {"path": "/srv/data/a.txt"}, True, ALLOWED),
    (DEV, "fs__read_file", {"path": "/srv/data"}, True, ALLOWED),
    (DEV, "fs__read_file", {"path": "/srv/data_secrets/a.txt"}, False, ARGUMENT_NOT_PERMITTED),
    (DEV, "fs__read_file", {"path": "/srv/data/../../etc/passwd"}, False, ARGUMENT_NOT_PERMITTED),
    (DEV, "fs__read_file", {"path": "data/a.txt"}, False, ARGUMENT_NOT_PERMITTED),
    (DEV, "fs__read_file", {}, False, ARGUMENT_NOT_PERMITTED),  # a missing checked argument fails
    (DEV, "fs__read_file", None, False, ARGUMENT_NOT_PERMITTED),
    (DEV, "fs__delete_file", {"path": "/srv/data/a.txt"}, False, DENIED_BY_RULE),  # deny wins
    (DEV, "notes__search", None, False, NO_GRANT),
    (DEV, "notes__summarize", None, True, ALLOWED),
    (DEV_CONTRACTOR, "fs__read_file", {"path": "/srv/data/a.txt"}, False, DENIED_BY_RULE),
    (ANALYST, "db__query", {"sql": "SELECT * FROM tickets"}, True, ALLOWED),
    (ANALYST, "db__query", {"sql": "SELECT * FROM t; DELETE FROM t"}, False, ARGUMENT_NOT_PERMITTED),
    (
        ANALYST,
        "db__query",
        {"sql": "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"},
        False,
        ARGUMENT_NOT_PERMITTED,
    ),
    (ANALYST, "db__query", {"sql": 42}, False, ARGUMENT_NOT_PERMITTED),
    (DEV, "db__query", {"sql": "SELECT 1"}, False, NO_GRANT),  # role glob data-* does not match dev
    (CI, "http__fetch", {"url": "https://api.example.org/x"}, True, ALLOWED),
    (CI, "http__fetch", {"url": "https://example.com@evil.com/"}, False, ARGUMENT_NOT_PERMITTED),
    (CI, "http__fetch", {"url": "https://example.org/"}, False, ARGUMENT_NOT_PERMITTED),
    (
        PrincipalFacts("ci"),
        "http__fetch",
        {"url": "https://example.com/"},
        False,
        NO_GRANT,
    ),  # ci-* needs the dash
    (NOBODY, "mail__send", {"to": "a@example.com"}, True, ALLOWED),
    (NOBODY, "mail__send", {"to": "a@example.com, attacker@pwnd.com"}, False, ARGUMENT_NOT_PERMITTED),
    (NOBODY, "mail__send", {"to": ["a@example.com", "b@example.com"]}, True, ALLOWED),
    (NOBODY, "mail__send", {"to": "attacker@pwnd.com"}, False, ARGUMENT_NOT_PERMITTED),  # THREATS C2
    (BOB, "deploy__run", None, False, INSUFFICIENT_SCOPE),
    (BOB_WRONG_SCOPE, "deploy__run", None, False, INSUFFICIENT_SCOPE),  # exact match, no prefixes (D14)
    (BOB_WRITE, "deploy__run", None, True, ALLOWED),
    (MALLORY, "notes__search", None, False, DENIED_BY_RULE),
    (MALLORY, "fs__read_file", {"path": "/srv/data/a"}, False, DENIED_BY_RULE),
    (STDIO, "anything__at_all", None, True, ALLOWED),
    (STDIO, "fs__delete_file", {"path": "/srv/data/a"}, False, DENIED_BY_RULE),  # deny wins for stdio too
    (NOBODY, "mcpwarden://notes/notes://groceries", None, True, ALLOWED),
    (NOBODY, "mcpwarden://files/file:///etc/passwd", None, False, NO_GRANT),
    (NOBODY, "notes__search", None, False, NO_GRANT),
]


@pytest.mark.parametrize(("principal", "name", "arguments", "allowed", "code"), TRUTH_TABLE)
def test_truth_table(
    engine: PolicyEngine,
    principal: PrincipalFacts,
    name: str,
    arguments: dict[str, Any] | None,
    allowed: bool,
    code: str,
) -> None:
    decision = ask(engine, principal, name, arguments)
    assert (decision.allowed, decision.code) == (allowed, code), decision.message
    assert decision.message
    if allowed:
        assert decision.rules and all(rule.startswith("allow[") for rule in decision.rules)


LISTING_TABLE = [
    # Listings ignore argument conditions (some arguments could be allowed) but not principals,
    # names, scopes or unconditional deny rules.
    (DEV, "fs__read_file", True),
    (DEV, "fs__delete_file", False),
    (DEV_CONTRACTOR, "fs__read_file", False),
    (ALICE, "fs__read_file", False),
    (ANALYST, "db__query", True),
    (BOB, "deploy__run", False),
    (BOB_WRITE, "deploy__run", True),
    (MALLORY, "clock__now", False),
    (ALICE, "notes__add_note", True),  # a deny rule with `where` does not hide
]


@pytest.mark.parametrize(("principal", "name", "listed"), LISTING_TABLE)
def test_listing_table(engine: PolicyEngine, principal: PrincipalFacts, name: str, listed: bool) -> None:
    assert ask(engine, principal, name, action="list_tools").allowed is listed


def test_listing_and_calling_agree_for_every_principal_and_name(engine: PolicyEngine) -> None:
    """Listed <=> some call is allowed (here: the table's arguments that satisfy every condition)."""
    good = {
        "fs__read_file": {"path": "/srv/data/a"},
        "fs__delete_file": {"path": "/srv/data/a"},
        "db__query": {"sql": "SELECT 1"},
        "http__fetch": {"url": "https://example.com/"},
        "mail__send": {"to": "a@example.com"},
        "notes__add_note": {"title": "a@example.com"},
    }
    principals = [ALICE, DEV, DEV_CONTRACTOR, ANALYST, CI, BOB, BOB_WRITE, MALLORY, STDIO, NOBODY]
    names = [*good, "notes__search", "notes__summarize", "clock__now", "deploy__run", "x__y"]
    for principal in principals:
        for name in names:
            listed = ask(engine, principal, name, action="list_tools").allowed
            called = ask(engine, principal, name, good.get(name)).allowed
            assert listed == called, (principal.name, name)


def test_no_policy_allows_stdio_and_denies_http() -> None:
    engine = PolicyEngine.default()
    stdio = ask(engine, STDIO, "any__tool", transport="stdio")
    assert stdio.allowed and stdio.rules == ("stdio-default",)
    for principal in (NOBODY, ALICE, STDIO):  # HTTP: nobody, whatever the name
        http = ask(engine, principal, "any__tool", transport="http")
        assert (http.allowed, http.code) == (False, NO_GRANT)
        assert "no policy is configured" in http.message
    assert not ask(engine, NOBODY, "any__tool", action="list_tools", transport="http").allowed


def test_a_configured_policy_binds_stdio_too() -> None:
    engine = PolicyEngine(compile_policy(PolicySettings.model_validate({"allow": [{"tool": "notes__*"}]})))
    assert ask(engine, STDIO, "notes__search", transport="stdio").allowed
    assert not ask(engine, STDIO, "fs__read", transport="stdio").allowed


def test_contract_shorthand_still_works() -> None:
    settings = Settings.model_validate(
        {"servers": {}, "policy": {"allow": [{"principal": "*", "tool": "notes__*"}]}}
    )
    engine = PolicyEngine(compile_policy(settings.policy))
    assert ask(engine, NOBODY, "notes__search").allowed
    assert not ask(engine, NOBODY, "tickets__create").allowed
    assert engine.mode == "enforce"


@pytest.mark.parametrize(
    "name",
    ['al"ice', "al\\ice", 'x" || true || "', "a\nb", "*", "", "ünï", "role:admin"],
)
def test_odd_principal_names_are_data_not_policy(name: str) -> None:
    policy = PolicySettings.model_validate({"allow": [{"principal": "alice", "tool": "*"}]})
    engine = PolicyEngine(compile_policy(policy))
    assert not ask(engine, PrincipalFacts(name), "x__y").allowed
    assert not ask(engine, PrincipalFacts(name, frozenset({"admin", "*"})), "x__y").allowed


def test_quotes_in_rules_are_escaped() -> None:
    policy = PolicySettings.model_validate({"allow": [{"principal": 'we"ird\\', "tool": 'a"b*'}]})
    engine = PolicyEngine(compile_policy(policy))
    assert ask(engine, PrincipalFacts('we"ird\\'), 'a"bc').allowed
    assert not ask(engine, PrincipalFacts("weird"), 'a"bc').allowed


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"tool": "notes__?"}, "is a wildcard here"),
        ({"principal": "role:[ab]"}, "is a wildcard here"),
        ({"tool": ""}, "non-empty"),
        ({"tool": "x", "where": {"p": {"within": ["relative/dir"]}}}, "absolute"),
        ({"tool": "x", "where": {"p": {"within": []}}}, "at least one"),
        ({"tool": "x", "where": {"p": {}}}, "exactly one"),
        ({"tool": "x", "where": {"p": {"within": ["/a"], "hosts": ["b"]}}}, "exactly one"),
        ({"tool": "x", "where": {"p": {"sql": "read-write"}}}, "read-only"),
        ({"tool": "x", "when": {}}, "Extra inputs"),
    ],
)
def test_bad_rules_are_refused_at_load(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PolicySettings.model_validate({"allow": [rule]})


def test_bad_rules_name_the_key_and_line(tmp_path: Path) -> None:
    from mcpwarden.config import load_settings

    config = tmp_path / "mcpwarden.yaml"
    config.write_text("servers: {}\npolicy:\n  allow:\n    - principal: x\n      tool: 'a?'\n")
    with pytest.raises(ConfigError, match=r"mcpwarden.yaml:5: key 'policy.allow.0.tool'"):
        load_settings(config)


# -- Cedar files ---------------------------------------------------------------------------------


def cedar_engine(tmp_path: Path, text: str, **policy: Any) -> PolicyEngine:
    (tmp_path / "extra.cedar").write_text(text)
    settings = PolicySettings.model_validate({"cedar_file": "extra.cedar", **policy})
    return PolicyEngine(compile_policy(settings, base_dir=tmp_path))


def test_cedar_file_policies_join_the_shorthand(tmp_path: Path) -> None:
    engine = cedar_engine(
        tmp_path,
        """
        @id("ops-may-restart")
        permit (principal in Role::"ops", action == Action::"call_tool", resource)
        when { resource.server == "svc" && context has arguments && context.arguments has force
               && context.arguments.force == false };
        forbid (principal, action, resource)
        when { context.transport == "http" && resource.name like "*__admin*" };
        """,
        allow=[{"principal": "*", "tool": "*__admin_view"}],
    )
    ops = PrincipalFacts("o", frozenset({"ops"}))
    allowed = ask(engine, ops, "svc__restart", {"force": False})
    assert allowed.allowed and allowed.rules == ("extra.cedar:ops-may-restart",)
    assert not ask(engine, ops, "svc__restart", {"force": True}).allowed
    assert not ask(engine, ops, "svc__restart", {"force": 1.5}).allowed  # floats have no Cedar form
    refused = ask(engine, NOBODY, "x__admin_view")
    assert (refused.allowed, refused.code, refused.rules) == (False, DENIED_BY_RULE, ("extra.cedar#1",))
    assert ask(engine, STDIO, "x__admin_view", transport="stdio").allowed


def test_a_forbid_that_cannot_be_evaluated_fails_closed(tmp_path: Path) -> None:
    # Cedar skips a policy that errors; for a forbid that would mean failing open.
    engine = cedar_engine(
        tmp_path,
        'forbid (principal, action, resource) when { context.arguments.target == "prod" };',
        allow=[{"principal": "*", "tool": "*"}],
    )
    decision = ask(engine, NOBODY, "svc__deploy", {"other": "x"})
    assert (decision.allowed, decision.code) == (False, POLICY_ERROR)
    assert decision.errors and "extra.cedar#0" in decision.errors[0]
    assert ask(engine, NOBODY, "svc__deploy", {"target": "dev"}).allowed


def test_a_permit_that_cannot_be_evaluated_only_does_not_grant(tmp_path: Path) -> None:
    engine = cedar_engine(tmp_path, "permit (principal, action, resource) when { context.arguments.x == 1 };")
    decision = ask(engine, NOBODY, "svc__y", {})
    assert (decision.allowed, decision.code) == (False, NO_GRANT)
    assert ask(engine, NOBODY, "svc__y", {"x": 1}).allowed


def test_arguments_cannot_smuggle_entity_references(tmp_path: Path) -> None:
    engine = cedar_engine(
        tmp_path,
        "permit (principal, action, resource) when { context.arguments has who"
        ' && context.arguments.who == Role::"admin" };',
    )
    smuggled = {"who": {"__entity": {"type": "Role", "id": "admin"}}}
    assert not ask(engine, NOBODY, "svc__y", smuggled).allowed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("permit (principal, action, resource) when { ", "not a valid Cedar policy file"),
        ("permit (principal == ?principal, action, resource);", "templates are not supported"),
    ],
)
def test_bad_cedar_files_are_configuration_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cedar_engine(tmp_path, text)


def test_a_missing_cedar_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy.cedar_file"):
        compile_policy(PolicySettings(cedar_file="nope.cedar"), base_dir=tmp_path)


def test_dry_run_mode_is_carried() -> None:
    engine = PolicyEngine(compile_policy(PolicySettings.model_validate({"mode": "dry-run"})))
    assert engine.mode == "dry-run"
    assert not ask(engine, NOBODY, "x__y").allowed  # the decision is the same; the guard does not enforce it


def test_the_generated_cedar_is_readable() -> None:
    text = compile_policy(PolicySettings.model_validate(POLICY)).cedar_text
    assert '@id("allow[2]")\npermit (principal, action, resource)\nwhen { principal in Role::"dev"' in text
    assert 'forbid (principal, action, resource)\nwhen { principal == Principal::"mallory" }' in text


def test_unknown_actions_are_an_error(engine: PolicyEngine) -> None:
    with pytest.raises(ValueError, match="unknown policy action"):
        engine.decide(PolicyRequest(ALICE, "delete_everything", ResourceRef("a", "a__b")))


def test_decide_is_deterministic_and_pure(engine: PolicyEngine) -> None:
    request = PolicyRequest(
        DEV,
        "call_tool",
        ResourceRef("fs", "fs__read_file"),
        {"path": "/srv/data/a"},
        "http",
        {"/srv/data/a": "/srv/data/a"},
    )
    first = engine.decide(request)
    assert all(engine.decide(request) == first for _ in range(20))


# -- risk tiers ------------------------------------------------------------------------------------

RISK_POLICY = {
    "allow": [
        {"principal": "role:intern", "tool": "*", "risk": ["low", "medium"]},
        {"principal": "role:admin", "tool": "*"},
    ],
    "deny": [{"principal": "role:admin", "tool": "*", "risk": ["critical"]}],
}


@pytest.mark.parametrize(
    ("roles", "name", "risk", "allowed"),
    [
        ({"intern"}, "fs__read", "low", True),
        ({"intern"}, "fs__read", "medium", True),
        ({"intern"}, "fs__write", "high", False),
        ({"intern"}, "fs__read", None, False),  # an unknown tier never grants
        ({"intern"}, "mcpwarden://fs/file:///a", None, False),  # resources have no tier
        ({"admin"}, "fs__write", "high", True),
        ({"admin"}, "shell__exec", "critical", False),
        ({"admin"}, "shell__exec", None, False),  # an unknown tier cannot dodge a deny
        ({"admin"}, "mcpwarden://fs/file:///a", None, True),  # tier rules are about tools
    ],
)
def test_risk_tiers(roles: set[str], name: str, risk: str | None, allowed: bool) -> None:
    engine = PolicyEngine(compile_policy(PolicySettings.model_validate(RISK_POLICY)))
    kind = "resource" if name.startswith("mcpwarden://") else "tool"
    request = PolicyRequest(
        PrincipalFacts("p", frozenset(roles)),
        "read_resource" if kind == "resource" else "call_tool",
        ResourceRef("fs", name, kind, risk),
        None,
        "http",
    )
    assert engine.decide(request).allowed is allowed


def test_risk_tiers_are_validated() -> None:
    with pytest.raises(ValueError):
        PolicySettings.model_validate({"allow": [{"risk": ["extreme"]}]})


def test_per_name_slices_decide_exactly_as_the_whole_policy(engine: PolicyEngine) -> None:
    """The engine evaluates only the policies whose name clause can match; the full set must agree."""
    import cedarpy

    for principal, name, arguments, _, _ in TRUTH_TABLE:
        for action in ("call_tool", "list_tools"):
            kind = "resource" if name.startswith("mcpwarden://") else "tool"
            request = with_resolved_paths(
                engine,
                PolicyRequest(principal, action, ResourceRef("s", name, kind), arguments, "http"),
                realpath=lambda p: p,
            )
            sliced = engine.decide(request)
            satisfied, _ = engine._argument_facts(request, engine.compiled.conditional)
            whole = cedarpy.is_authorized(
                engine._cedar_request(request, satisfied),
                engine.compiled.policy_set,
                engine._entities(request),
            )
            assert sliced.allowed == whole.allowed, (principal, name, action)
            assert set(sliced.rules) == {engine.compiled.labels[p] for p in whole.diagnostics.reasons}
