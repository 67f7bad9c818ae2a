"""Counter semantics, asserted identically against the SQLite and the Redis backend.

Real time throughout (Redis takes its own clock); windows are short and every wait polls against
a deadline.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import anyio
import pytest

from mcpwarden.config import LimitRule
from mcpwarden.exchange import Identity
from mcpwarden.quota.backend import CounterBackend, Outcome, Settlement
from mcpwarden.quota.plan import Admission, QuotaRules

pytestmark = pytest.mark.anyio

ALICE = Identity("alice")
BOB = Identity("bob")


def admission(
    limits: list[dict[str, Any]],
    identity: Identity = ALICE,
    *,
    cost: float = 1.0,
    args: str = "same",
    lease_seconds: float = 60.0,
) -> Admission:
    rules = QuotaRules([LimitRule.model_validate(limit) for limit in limits])
    return rules.plan(
        rules.matching(identity, "notes__search"),
        identity,
        "notes__search",
        args,
        now=time.time(),
        cost=cost,
        lease_id=uuid.uuid4().hex,
        lease_seconds=lease_seconds,
    )


async def admit_until(backend: CounterBackend, make: Any, timeout: float) -> tuple[Outcome, float]:
    """Poll until an admission passes; (outcome, seconds waited). Fails at the deadline."""
    start = time.monotonic()
    while True:
        outcome = await backend.admit(make())
        if outcome.refusal is None:
            return outcome, time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"still refused after {timeout} s: {outcome.refusal}")
        await anyio.sleep(0.02)


async def test_rate_bucket_allows_the_burst_then_says_when(backend: CounterBackend) -> None:
    limits = [{"rate": "3/h"}]
    outcomes = [await backend.admit(admission(limits)) for _ in range(4)]
    assert [o.refusal is None for o in outcomes] == [True, True, True, False]
    refusal = outcomes[3].refusal
    assert refusal is not None and refusal.kind == "rate"
    assert refusal.retry_after is not None and 1190 < refusal.retry_after <= 1200  # one token per 20 min
    assert (await backend.admit(admission(limits, BOB))).refusal is None  # bob has his own bucket


async def test_rate_bucket_refills(backend: CounterBackend) -> None:
    limits = [{"rate": "20/s"}]
    for _ in range(20):
        assert (await backend.admit(admission(limits))).refusal is None
    refused = await backend.admit(admission(limits))
    assert refused.refusal is not None and refused.refusal.kind == "rate"
    assert refused.refusal.retry_after is not None and refused.refusal.retry_after <= 0.06
    _, waited = await admit_until(backend, lambda: admission(limits), timeout=2)
    assert waited < 1


async def test_scope_global_shares_one_bucket(backend: CounterBackend) -> None:
    limits = [{"rate": "2/h", "scope": "global"}]
    assert (await backend.admit(admission(limits, ALICE))).refusal is None
    assert (await backend.admit(admission(limits, BOB))).refusal is None
    refusal = (await backend.admit(admission(limits, Identity("carol")))).refusal
    assert refusal is not None and refusal.kind == "rate"


async def test_concurrency_leases_are_released_on_settle(backend: CounterBackend) -> None:
    limits = [{"concurrency": 2}]
    first, second, third = (admission(limits) for _ in range(3))
    assert (await backend.admit(first)).refusal is None
    assert (await backend.admit(second)).refusal is None
    refusal = (await backend.admit(third)).refusal
    assert refusal is not None and refusal.kind == "concurrency" and refusal.retry_after is None
    await backend.settle(Settlement(first.lease_id, leases=tuple(c.key for c in first.concurrency)))
    assert (await backend.admit(third)).refusal is None


async def test_a_lease_left_behind_expires(backend: CounterBackend) -> None:
    limits = [{"concurrency": 1}]
    assert (await backend.admit(admission(limits, lease_seconds=0.3))).refusal is None  # never settled
    refusal = (await backend.admit(admission(limits))).refusal
    assert refusal is not None and refusal.kind == "concurrency"
    _, waited = await admit_until(backend, lambda: admission(limits), timeout=3)
    assert waited < 2


async def test_budget_reserves_the_call_cost_and_refuses_what_does_not_fit(backend: CounterBackend) -> None:
    limits = [{"budget": {"units": 3, "per": "day"}}]
    first = admission(limits, cost=2)
    assert (await backend.admit(first)).refusal is None
    refusal = (await backend.admit(admission(limits, cost=2))).refusal  # 2 + 2 > 3
    assert refusal is not None and refusal.kind == "budget"
    assert (await backend.admit(admission(limits, cost=1))).refusal is None  # 2 + 1 fits exactly
    assert await backend.budget_used(first.budgets[0].key) == 3
    assert (await backend.admit(admission(limits, cost=0))).refusal is not None  # nothing left: no free calls
    assert (await backend.admit(admission(limits, BOB, cost=2))).refusal is None  # bob's budget is his


async def test_settle_refunds_and_charges_per_kb(backend: CounterBackend) -> None:
    limits = [{"budget": {"units": 4, "per": "hour"}}]
    first = admission(limits)
    key = first.budgets[0].key
    assert (await backend.admit(first)).refusal is None
    await backend.settle(Settlement(first.lease_id, budgets=first.budgets, delta=-1.0))  # refund
    assert await backend.budget_used(key) == 0
    await backend.settle(Settlement(first.lease_id, budgets=first.budgets, delta=-5.0))
    assert await backend.budget_used(key) == 0  # never below zero
    second = admission(limits)
    assert (await backend.admit(second)).refusal is None
    await backend.settle(Settlement(second.lease_id, budgets=second.budgets, delta=4.5))  # a big result
    assert await backend.budget_used(key) == 5.5  # per-KB cost may overshoot, once
    refusal = (await backend.admit(admission(limits))).refusal
    assert refusal is not None and refusal.kind == "budget"


async def test_alert_at_80_percent_once_per_period(backend: CounterBackend) -> None:
    limits = [{"budget": {"units": 10, "per": "day"}}]
    alerts = [len((await backend.admit(admission(limits))).alerts) for _ in range(10)]
    assert alerts == [0] * 7 + [1, 0, 0]  # the 8th unit crosses 80 %
    other = [{"budget": {"units": 10, "per": "month"}}]
    first = admission(other)
    assert (await backend.admit(first)).alerts == ()
    crossed = await backend.settle(Settlement(first.lease_id, budgets=first.budgets, delta=7.5))
    assert [(a.check.period, a.used) for a in crossed] == [("month", 8.5)]
    assert await backend.settle(Settlement(first.lease_id, budgets=first.budgets, delta=0.5)) == ()


async def test_loop_breaker_trips_and_releases(backend: CounterBackend) -> None:
    limits = [{"loop": {"repeats": 3, "window": "600ms"}}]
    started = time.monotonic()
    for _ in range(3):
        assert (await backend.admit(admission(limits))).refusal is None
    refusal = (await backend.admit(admission(limits))).refusal
    assert refusal is not None and refusal.kind == "loop"
    assert refusal.retry_after is not None and 0 < refusal.retry_after <= 0.6
    assert (await backend.admit(admission(limits, args="different"))).refusal is None
    assert (await backend.admit(admission(limits, BOB))).refusal is None
    await admit_until(backend, lambda: admission(limits), timeout=5)
    assert time.monotonic() - started >= 0.5  # released only once the window passed


async def test_refused_attempts_do_not_extend_a_loop(backend: CounterBackend) -> None:
    limits = [{"loop": {"repeats": 2, "window": "500ms"}}]
    for _ in range(2):
        assert (await backend.admit(admission(limits))).refusal is None
    for _ in range(5):  # hammering while refused
        assert (await backend.admit(admission(limits))).refusal is not None
    _, waited = await admit_until(backend, lambda: admission(limits), timeout=5)
    assert waited < 1.5


async def test_a_refused_call_commits_nothing(backend: CounterBackend) -> None:
    limits = [
        {"budget": {"units": 10, "per": "day"}},
        {"concurrency": 5},
        {"loop": {"repeats": 5, "window": "1h"}},
        {"rate": "1/h"},
    ]
    first = admission(limits)
    assert (await backend.admit(first)).refusal is None
    for _ in range(3):
        refusal = (await backend.admit(admission(limits))).refusal
        assert refusal is not None and refusal.kind == "rate"  # budget, loop and slots were fine
    assert await backend.budget_used(first.budgets[0].key) == 1  # no reservation for refused calls
    # Neither leases nor loop entries were taken: with rate out of the way, 4 more fit both.
    relaxed = [limit for limit in limits if "rate" not in limit]
    for _ in range(4):
        assert (await backend.admit(admission(relaxed))).refusal is None
    refusal = (await backend.admit(admission(relaxed))).refusal
    assert refusal is not None and refusal.kind == "loop"


async def test_checks_run_in_a_fixed_order(backend: CounterBackend) -> None:
    limits = [{"rate": "1/h"}, {"budget": {"units": 1, "per": "day"}}]
    assert (await backend.admit(admission(limits))).refusal is None
    refusal = (await backend.admit(admission(limits))).refusal
    assert refusal is not None and refusal.kind == "budget"  # budget is reported before rate


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_two_replicas_admitting_at_once_never_overshoot(
    kind: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """Two backend instances (two gateways' connections) race 2 x 60 admissions at one budget and
    one concurrency cap: exactly the limit gets through, never one more."""
    from mcpwarden.quota.backend import SqliteCounters

    if kind == "redis":
        from mcpwarden.quota.redis import RedisCounters

        prefix = f"test:{uuid.uuid4().hex}:"
        url = request.getfixturevalue("redis_url")
        replicas: list[CounterBackend] = [RedisCounters(url, key_prefix=prefix) for _ in range(2)]
    else:
        replicas = [SqliteCounters(tmp_path / "shared.db") for _ in range(2)]
    budget = [{"tool": "notes__*", "budget": {"units": 25, "per": "day"}}]
    slots = [{"concurrency": 7}]
    admitted = {"budget": 0, "slots": 0}

    async def race(replica: CounterBackend, limits: list[dict[str, Any]], name: str) -> None:
        if (await replica.admit(admission(limits))).refusal is None:
            admitted[name] += 1

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(60):
                    for replica in replicas:
                        tg.start_soon(race, replica, budget, "budget")
                        tg.start_soon(race, replica, slots, "slots")
    finally:
        for replica in replicas:
            await replica.aclose()
    assert admitted == {"budget": 25, "slots": 7}
