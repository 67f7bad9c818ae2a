"""Toxic flow (THREATS C5, C21): untrusted content + private data, then an external sink."""

from __future__ import annotations

from typing import Any

import pytest

from mcpwarden import reasons
from mcpwarden.config import FlowSettings, RiskSettings, Settings
from mcpwarden.exchange import Exchange, Identity, Verdict
from mcpwarden.guards.approval import APPROVAL_REASONS_KEY
from mcpwarden.guards.flow import PRIVATE, SINK, UNTRUSTED, FlowGuard, labels_for
from mcpwarden.guards.tasks import TASK_TOOL_KEY
from mcpwarden.risk import classify

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("name", "definition", "labels"),
    [
        ("list_issues", None, {UNTRUSTED}),
        ("get_file_contents", None, {PRIVATE}),
        ("create_pull_request", None, {SINK}),
        ("list_messages", None, {UNTRUSTED, PRIVATE}),
        ("send_message", None, {SINK}),
        ("get_secret", None, {PRIVATE}),
        ("fetch", {"annotations": {"openWorldHint": True}}, {UNTRUSTED}),
        ("search_notes", None, {PRIVATE}),
        ("add", None, set()),
        ("echo", None, set()),
        ("create_issue", None, {SINK}),
    ],
)
def test_labels_truth_table(name: str, definition: dict[str, Any] | None, labels: set[str]) -> None:
    assessment = classify("gh", name, definition, RiskSettings())
    assert labels_for(f"gh__{name}", assessment, name, definition, FlowSettings()) == labels


def test_config_adds_and_removes_labels() -> None:
    settings = FlowSettings(
        labels={"db__*": ("private-data",)}, unlabel={"gh__list_issues": ("untrusted-content",)}
    )
    assert labels_for("db__run", classify("db", "run", None, RiskSettings()), "run", None, settings) == {
        PRIVATE
    }
    assessment = classify("gh", "list_issues", None, RiskSettings())
    assert labels_for("gh__list_issues", assessment, "list_issues", None, settings) == frozenset()


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def make(action: str = "hold", **flow: Any) -> tuple[FlowGuard, Clock]:
    settings = Settings.model_validate({"flow": {"action": action, **flow}})
    clock = Clock()
    return FlowGuard(settings.flow, settings.risk, None, "__", clock), clock


async def step(
    guard: FlowGuard, tool: str, session: str = "s1", meta: dict[str, Any] | None = None, principal: str = "u"
) -> tuple[Any, Exchange]:
    params: dict[str, Any] = {"_meta": meta} if meta else {}
    exchange = Exchange(
        "tools/call",
        params,
        Identity(principal),
        "http",
        session,
        "2026-07-28",
        "gh",
        tool,
        f"gh__{tool}",
        {},
    )
    decision = await guard.check_request(exchange)
    if decision.allowed:
        await guard.check_response(exchange)
    return decision, exchange


C5 = ["list_issues", "get_file_contents", "create_pull_request"]


async def test_c5_sequence_is_held_at_the_third_step() -> None:
    guard, _ = make()
    for tool in C5[:2]:
        decision, exchange = await step(guard, tool)
        assert decision.allowed and APPROVAL_REASONS_KEY not in exchange.metadata
    decision, exchange = await step(guard, C5[2])
    assert decision.allowed  # the approval guard, after this one, holds it
    [why] = exchange.metadata[APPROVAL_REASONS_KEY]
    assert "gh__list_issues" in why and "gh__get_file_contents" in why
    assert exchange.metadata["audit"]["toxic_flow"]["sink"] == "gh__create_pull_request"


async def test_c5_sequence_is_denied_in_deny_mode() -> None:
    guard, _ = make("deny")
    for tool in C5[:2]:
        assert (await step(guard, tool))[0].allowed
    decision, _ = await step(guard, C5[2])
    assert decision.verdict is Verdict.DENY and decision.reason == reasons.TOXIC_FLOW


@pytest.mark.parametrize(
    "sequence",
    [
        ["create_pull_request", "list_issues", "get_file_contents"],  # the sink first
        ["get_file_contents", "create_pull_request"],  # no untrusted input
        ["list_issues", "create_pull_request"],  # nothing private read
        ["list_issues", "list_issues", "create_pull_request"],
    ],
)
async def test_other_orders_pass(sequence: list[str]) -> None:
    guard, _ = make("deny")
    for tool in sequence:
        assert (await step(guard, tool))[0].allowed, tool


async def test_reads_in_another_conversation_do_not_count() -> None:
    guard, _ = make("deny")
    await step(guard, "list_issues", session="s1")
    await step(guard, "get_file_contents", session="s2")
    assert (await step(guard, "create_pull_request", session="s1"))[0].allowed
    # a conversation key in _meta separates conversations of one stateless principal
    key = "io.modelcontextprotocol/related-task"
    await step(guard, "list_issues", session="u", meta={key: {"taskId": "a"}})
    await step(guard, "get_file_contents", session="u", meta={key: {"taskId": "a"}})
    assert (await step(guard, "create_pull_request", session="u", meta={key: {"taskId": "b"}}))[0].allowed
    decision, _ = await step(guard, "create_pull_request", session="u", meta={key: {"taskId": "a"}})
    assert decision.reason == reasons.TOXIC_FLOW
    # and never crosses principals, whatever key they send
    assert (await step(guard, "create_pull_request", meta={key: {"taskId": "a"}}, principal="v"))[0].allowed


async def test_reads_are_forgotten_after_the_window() -> None:
    guard, clock = make("deny", window=60)
    await step(guard, "list_issues")
    await step(guard, "get_file_contents")
    clock.now += 61
    assert (await step(guard, "create_pull_request"))[0].allowed


async def test_c21_supabase_trifecta_with_config_labels() -> None:
    """A ticket (untrusted) tells the agent to read integration_tokens and post them back."""
    guard, _ = make(
        "deny",
        labels={
            "gh__read_ticket": ["untrusted-content"],
            "gh__execute_sql": ["private-data"],
            "gh__update_ticket": ["external-sink"],
        },
    )
    assert (await step(guard, "read_ticket"))[0].allowed
    assert (await step(guard, "execute_sql"))[0].allowed
    assert (await step(guard, "update_ticket"))[0].reason == reasons.TOXIC_FLOW


def test_flow_can_be_switched_off() -> None:
    assert FlowGuard.from_settings(Settings.model_validate({"flow": {"action": "off"}})) is None


def _task_poll(status: str, method: str = "tasks/get") -> Exchange:
    poll = Exchange(method, {}, Identity("u"), "http", "s1", "2026-07-28", "gh", "t-1", "gh__t-1")
    poll.metadata[TASK_TOOL_KEY] = "gh__list_issues"  # as the task ownership guard leaves it
    detailed = {"resultType": "complete", "taskId": "gh__t-1", "status": status}
    poll.result = {**detailed, "result": {"content": []}} if status == "completed" else detailed
    return poll


@pytest.mark.parametrize("method", ["tasks/get", "tasks/result"])
async def test_a_task_s_result_is_read_when_it_arrives(method: str) -> None:
    """A task's answer may come long after the call that created it: its content is read then,
    not only when the task was created (which may be past the window by then)."""
    guard, clock = make("deny")
    await step(guard, "list_issues")  # answered with a task
    clock.now += 3000
    await step(guard, "get_file_contents")
    clock.now += 3000  # the creating call is now past the window
    assert (await guard.check_response(_task_poll("working"))).allowed  # nothing read yet
    assert (await step(guard, "create_pull_request"))[0].allowed
    assert (await guard.check_response(_task_poll("completed", method))).allowed
    decision, _ = await step(guard, "create_pull_request")
    assert decision.reason == reasons.TOXIC_FLOW
