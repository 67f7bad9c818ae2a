"""Risk tiers: a truth table over names, descriptions, schemas, annotations and overrides (LLM06)."""

from __future__ import annotations

from typing import Any

import pytest

from mcpwarden.config import RiskSettings, Settings
from mcpwarden.exchange import Exchange, Identity
from mcpwarden.guards.risk import RiskGuard
from mcpwarden.risk import classify, name_words

pytestmark = pytest.mark.anyio
NONE = RiskSettings()


@pytest.mark.parametrize(
    ("name", "definition", "tier", "category"),
    [
        ("echo", None, "low", "read"),
        ("search_notes", None, "low", "read"),
        ("get_posts", None, "low", "read"),
        ("bad_reply", None, "low", "read"),
        ("create_note", None, "medium", "write"),
        ("updateRecord", None, "medium", "write"),
        ("delete_repo", None, "high", "destructive"),
        ("dropTable", None, "high", "destructive"),
        ("send_email", None, "high", "external-communication"),
        ("post_message", None, "high", "external-communication"),
        ("get_api_token", None, "high", "credential-access"),
        ("run_command", None, "critical", "code-execution"),
        ("execute_sql", None, "critical", "code-execution"),
        ("transfer_funds", None, "critical", "financial"),
        ("create_payment", None, "critical", "financial"),
        # description, schema and annotations
        ("tidy", {"description": "Permanently removes the folder."}, "high", "destructive"),
        ("helper", {"description": "Runs a shell command on the host."}, "critical", "code-execution"),
        (
            "notify_team",
            {"inputSchema": {"properties": {"recipients": {}}}},
            "high",
            "external-communication",
        ),
        (
            "do_it",
            {"inputSchema": {"properties": {"command": {"type": "string"}}}},
            "critical",
            "code-execution",
        ),
        ("tool", {"annotations": {"destructiveHint": True}}, "high", "destructive"),
        ("tool", {"annotations": {"readOnlyHint": False}}, "medium", "write"),
        # an unannotated tool is not "destructive by default" (only stated hints count)
        ("tool", {"annotations": {}}, "low", "read"),
    ],
)
def test_truth_table(name: str, definition: dict[str, Any] | None, tier: str, category: str) -> None:
    assessment = classify("srv", name, definition, NONE)
    assert assessment.tier == tier, assessment.reasons
    assert category in assessment.categories
    assert assessment.tool == f"srv__{name}"
    assert assessment.reasons


def test_read_only_hint_never_lowers_risk() -> None:
    """LLM06: `readOnlyHint: true` on `delete_repo` still needs approval."""
    lying = {"annotations": {"readOnlyHint": True, "destructiveHint": False}, "description": "Reads a repo."}
    assessment = classify("gh", "delete_repo", lying, NONE)
    assert assessment.tier == "high"
    assert assessment.tier in NONE.approval_tiers
    assert any("readOnlyHint: true ignored" in reason for reason in assessment.reasons)


def test_annotations_only_raise() -> None:
    plain = classify("s", "list_items", {}, NONE)
    hinted = classify("s", "list_items", {"annotations": {"destructiveHint": True}}, NONE)
    assert plain.tier == "low" and hinted.tier == "high"


@pytest.mark.parametrize(
    ("overrides", "tool", "tier"),
    [
        ({"notes__delete_*": "critical"}, "delete_note", "critical"),
        ({"notes": "low"}, "delete_note", "low"),  # the operator may lower a tier
        ({"notes": "low", "notes__delete_*": "critical"}, "delete_note", "critical"),  # glob beats server
        ({"notes__*": "medium", "notes__delete_note": "low"}, "delete_note", "low"),  # exact beats glob
        ({"notes__del*": "medium", "notes__delete_*": "critical"}, "delete_note", "critical"),  # longer glob
        ({"other": "critical"}, "search", "low"),
    ],
)
def test_overrides(overrides: dict[str, Any], tool: str, tier: str) -> None:
    assessment = classify("notes", tool, None, RiskSettings(overrides=overrides))
    assert assessment.tier == tier


def test_name_words() -> None:
    assert name_words("deleteRepo_v2.now") == ["delete", "repo", "v2", "now"]
    assert name_words("HTTPRequest") == ["http", "request"]


class _Catalog:
    def __init__(self, tools: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.tools = tools

    def tool(self, server_id: str, name: str) -> dict[str, Any] | None:
        return self.tools.get((server_id, name))

    def instructions(self, server_id: str) -> str | None:
        return None

    def server_ids(self) -> tuple[str, ...]:
        return ("gh",)


async def test_guard_puts_the_tier_on_the_exchange(tmp_path: Any) -> None:
    catalog = _Catalog({("gh", "tidy"): {"name": "tidy", "annotations": {"destructiveHint": True}}})
    guard = RiskGuard(Settings(state_dir=tmp_path), catalog)
    exchange = Exchange(
        "tools/call", {}, Identity("u"), "stdio", "s", "2025-11-25", "gh", "tidy", "gh__tidy", {}
    )
    assert (await guard.check_request(exchange)).allowed
    assert exchange.metadata["risk_tier"] == "high"
    assert exchange.metadata["risk"]["categories"] == ["destructive"]
    assert exchange.metadata["audit"]["risk_tier"] == "high"
