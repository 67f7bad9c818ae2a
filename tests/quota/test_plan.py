"""Matching, cost, keys and periods: the pure part of quotas, as truth tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mcpwarden.config import LimitRule, Settings, parse_settings
from mcpwarden.errors import ConfigError
from mcpwarden.exchange import Identity
from mcpwarden.quota.plan import QuotaRules, glob_pattern, period_bounds

ALICE = Identity("alice", roles=frozenset({"dev"}))
BOB = Identity("bob", roles=frozenset({"ops", "dev-lead"}))
CAROL = Identity("carol")


@pytest.mark.parametrize(
    ("principal", "tool", "identity", "exposed", "matches"),
    [
        ("*", "*", CAROL, "notes__search", True),
        ("alice", "*", ALICE, "notes__search", True),
        ("alice", "*", BOB, "notes__search", False),
        ("al*", "*", ALICE, "x__y", True),
        ("*ice", "*", ALICE, "x__y", True),
        ("ALICE", "*", ALICE, "x__y", False),  # case-sensitive
        ("role:dev", "*", ALICE, "x__y", True),
        ("role:dev", "*", BOB, "x__y", False),  # dev-lead is not dev
        ("role:dev*", "*", BOB, "x__y", True),
        ("role:dev", "*", CAROL, "x__y", False),  # no roles
        ("role:*", "*", CAROL, "x__y", False),  # a role glob needs some role
        ("role:*", "*", BOB, "x__y", True),
        ("*", "notes__*", ALICE, "notes__search", True),
        ("*", "notes__*", ALICE, "tickets__search", False),
        ("*", "notes__*", ALICE, "notes", False),
        ("*", "*__search", ALICE, "tickets__search", True),
        ("*", "notes__search", ALICE, "notes__search_all", False),  # anchored
        ("*", "notes.x", ALICE, "notesax", False),  # '.' is literal, not a regex dot
        ("*", "mcpwarden://notes/*", ALICE, "mcpwarden://notes/file:///a.txt", True),
        ("alice", "notes__*", ALICE, "tickets__open", False),  # both must match
    ],
)
def test_matching(principal: str, tool: str, identity: Identity, exposed: str, matches: bool) -> None:
    rules = QuotaRules([LimitRule(principal=principal, tool=tool, rate="1/s")])
    assert bool(rules.matching(identity, exposed)) is matches


def test_every_matching_rule_applies_in_order() -> None:
    rules = QuotaRules(
        [
            LimitRule(tool="notes__*", rate="5/s"),
            LimitRule(principal="bob", rate="1/s"),
            LimitRule(principal="role:dev", budget={"units": 10, "per": "day"}),  # type: ignore[arg-type]
            LimitRule(concurrency=2),
        ]
    )
    assert [r.index for r in rules.matching(ALICE, "notes__search")] == [0, 2, 3]
    assert [r.index for r in rules.matching(BOB, "tickets__open")] == [1, 3]


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ([], (1.0, 0.0)),  # no rule sets a cost: one unit per call
        ([{"rate": "1/s"}], (1.0, 0.0)),
        ([{"cost": 0}], (0.0, 0.0)),
        ([{"cost": 5}, {"tool": "notes__*", "cost": 2}], (5.0, 0.0)),  # the largest applies
        ([{"cost": 2, "cost_per_kb": 0.5}, {"cost_per_kb": 0.1}], (2.0, 0.5)),
        ([{"tool": "tickets__*", "cost": 9}], (1.0, 0.0)),  # not matching: ignored
    ],
)
def test_call_cost(limits: list[dict[str, Any]], expected: tuple[float, float]) -> None:
    rules = QuotaRules([LimitRule.model_validate(limit) for limit in limits])
    assert rules.call_cost(rules.matching(ALICE, "notes__search")) == expected


def _plan(
    limits: list[dict[str, Any]], identity: Identity, exposed: str = "notes__search", args: str = "d"
) -> Any:
    rules = QuotaRules([LimitRule.model_validate(limit) for limit in limits])
    return rules.plan(
        rules.matching(identity, exposed),
        identity,
        exposed,
        args,
        now=datetime(2026, 11, 24, 22, 30, tzinfo=UTC).timestamp(),
        cost=1.0,
        lease_id="L",
        lease_seconds=60,
    )


def test_keys_are_per_principal_by_default_and_shared_with_scope_global() -> None:
    limits = [{"rate": "5/s"}, {"rate": "100/m", "scope": "global"}]
    alice, bob = _plan(limits, ALICE), _plan(limits, BOB)
    assert alice.rates[0].key != bob.rates[0].key  # each principal its own bucket
    assert alice.rates[1].key == bob.rates[1].key  # one bucket for everyone
    assert '"alice"' in alice.rates[0].key and "alice" not in alice.rates[1].key


def test_keys_never_depend_on_position_or_units() -> None:
    before = _plan([{"rate": "1/s"}, {"budget": {"units": 10, "per": "day"}}], ALICE)
    after = _plan([{"budget": {"units": 50, "per": "day"}}, {"concurrency": 3}, {"rate": "1/s"}], ALICE)
    assert before.budgets[0].key == after.budgets[0].key  # raising units keeps what was spent
    assert before.rates[0].key == after.rates[0].key


def test_counters_shared_by_rules_appear_once_with_the_strictest_limit() -> None:
    plan = _plan(
        [
            {"budget": {"units": 10, "per": "day"}},
            {"budget": {"units": 4, "per": "day"}},
            {"budget": {"units": 100, "per": "month"}},
            {"concurrency": 5},
            {"concurrency": 2},
            {"rate": "3/s"},
            {"rate": "3/s"},
            {"loop": {"repeats": 3, "window": "10s"}},
        ],
        ALICE,
    )
    assert [(b.units, b.period) for b in plan.budgets] == [(4, "day"), (100, "month")]
    assert [c.limit for c in plan.concurrency] == [2]
    assert len(plan.rates) == 1
    assert plan.rates[0].capacity == 3 and plan.rates[0].refill_per_second == 3


def test_loop_key_is_principal_tool_and_arguments() -> None:
    limits = [{"loop": {"repeats": 3, "window": "10s"}}]
    base = _plan(limits, ALICE).loops[0].key
    assert _plan(limits, ALICE).loops[0].key == base
    assert _plan(limits, BOB).loops[0].key != base
    assert _plan(limits, ALICE, exposed="notes__list").loops[0].key != base
    assert _plan(limits, ALICE, args="other").loops[0].key != base


@pytest.mark.parametrize(
    ("per", "moment", "label", "end"),
    [
        (
            "hour",
            datetime(2026, 11, 24, 22, 30, 5, tzinfo=UTC),
            "2026-11-24T22",
            datetime(2026, 11, 24, 23, tzinfo=UTC),
        ),
        (
            "day",
            datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC),
            "2026-11-24",
            datetime(2026, 11, 25, tzinfo=UTC),
        ),
        (
            "day",
            datetime(2026, 11, 25, 0, 0, 0, tzinfo=UTC),
            "2026-11-25",
            datetime(2026, 11, 26, tzinfo=UTC),
        ),
        ("month", datetime(2026, 11, 24, tzinfo=UTC), "2026-11", datetime(2026, 12, 1, tzinfo=UTC)),
        ("month", datetime(2026, 12, 31, 23, tzinfo=UTC), "2026-12", datetime(2027, 1, 1, tzinfo=UTC)),
        ("month", datetime(2028, 2, 29, 12, tzinfo=UTC), "2028-02", datetime(2028, 3, 1, tzinfo=UTC)),
    ],
)
def test_budget_periods_are_utc_calendar_periods(
    per: str, moment: datetime, label: str, end: datetime
) -> None:
    assert period_bounds(per, moment.timestamp()) == (label, end.timestamp())


def test_a_new_period_is_a_new_counter() -> None:
    limits = [{"budget": {"units": 5, "per": "day"}}]
    rules = QuotaRules([LimitRule.model_validate(limit) for limit in limits])

    def key_at(moment: datetime) -> str:
        matched = rules.matching(ALICE, "x__y")
        plan = rules.plan(
            matched, ALICE, "x__y", None, now=moment.timestamp(), cost=1, lease_id="", lease_seconds=1
        )
        return str(plan.budgets[0].key)

    assert key_at(datetime(2026, 11, 24, 0, 1, tzinfo=UTC)) == key_at(
        datetime(2026, 11, 24, 23, 59, tzinfo=UTC)
    )
    assert key_at(datetime(2026, 11, 24, 23, 59, tzinfo=UTC)) != key_at(
        datetime(2026, 11, 25, 0, 1, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("glob", "text", "matches"),
    [
        ("a*c", "abc", True),
        ("a*c", "ac", True),
        ("a*c", "abd", False),
        ("a+b", "a+b", True),
        ("a+b", "aab", False),
    ],
)
def test_glob(glob: str, text: str, matches: bool) -> None:
    assert (glob_pattern(glob).fullmatch(text) is not None) is matches


def test_contract_shape_still_parses(tmp_path: Any) -> None:
    text = """
servers: {notes: {command: python, args: [x.py]}}
limits:
  - principal: "*"
    tool: "*"
    rate: 5/s
    concurrency: 4
    cost: 1
    budget: {units: 1000, per: day}
    max_result_kb: 512
    loop: {repeats: 10, window: 60s}
  - principal: role:dev
    tool: notes__*
    cost_per_kb: 0.25
    on_large_result: truncate
    scope: global
quota: {backend: redis, redis_url: "redis://127.0.0.1:6379/0"}
"""
    settings = parse_settings(text, tmp_path / "mcpwarden.yaml", {})
    assert settings.limits[0].on_large_result == "deny"  # the default
    assert settings.limits[1].scope == "global" and settings.limits[1].cost_per_kb == 0.25
    assert settings.quota.backend == "redis"
    assert Settings().quota.backend == "sqlite"


@pytest.mark.parametrize(
    ("snippet", "complaint"),
    [
        ("limits: [{rate: 0/s}]", "limits.0.rate"),
        ("limits: [{rate: 5/d}]", "limits.0.rate"),
        ("limits: [{tool: 'notes__?'}]", "limits.0.tool"),
        ("limits: [{loop: {repeats: 3, window: 0s}}]", "limits.0.loop.window"),
        ("limits: [{on_large_result: cut}]", "limits.0.on_large_result"),
        ("limits: [{budget: {units: 5, per: week}}]", "limits.0.budget.per"),
        ("quota: {backend: redis}", "quota"),
        ("quota: {backend: redis, redis_url: 'http://x'}", "quota"),
        ("quota: {redis_url: 'redis://127.0.0.1/0'}", "quota"),
    ],
)
def test_bad_limits_name_the_key(tmp_path: Any, snippet: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(f"servers: {{}}\n{snippet}\n", tmp_path / "mcpwarden.yaml", {})
    assert f"key '{complaint}" in str(caught.value)


def test_redis_url_is_never_echoed_in_errors(tmp_path: Any) -> None:
    text = "quota: {backend: redis, redis_url: '${URL}'}\n"
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, tmp_path / "mcpwarden.yaml", {"URL": "http://:hunter2@x"})
    assert "hunter2" not in str(caught.value)
