"""The quota guard: rate limits, concurrency caps, budgets, result caps and the loop breaker.

Runs early in the chain (after the size guard), on every call that makes an upstream work and
return content: `tools/call`, `prompts/get` and `resources/read`. Listings and other requests are
not metered. Every counter is keyed on the principal (`exchange.identity`), never on the session,
so an agent that reconnects finds its limits where it left them (THREATS LLM10, E4, E21).

The flow of one call:
1. `check_request` matches the `limits` rules (`quota.plan`), works out the call's cost and asks
   the backend to admit it atomically: budget, loop, concurrency and rate checks all pass, or the
   call is refused with `budget-exhausted`, `loop-detected`, `too-many-in-flight` or
   `rate-limited` and `retry_after` (seconds) in `error.data` where waiting helps. Admission takes
   a rate token, a concurrency lease, a loop entry, and reserves the per-call cost on every
   matching budget.
2. `check_response` caps the result (`max_result_kb`: refuse with `result-too-large`, or with
   `on_large_result: truncate` shorten it with a marker), then settles: releases the lease and
   charges the cost per KB the upstream returned. A task's result, inlined later in `tasks/get`
   (or the answer of a legacy `tasks/result`), is held to the same `max_result_kb` and charged the
   same cost per KB as the tool that created the task (polling it is not metered).
3. `finish` settles calls that never reached `check_response`: the lease is released, and a call
   that got no answer at all (a later guard refused it, the upstream failed, the client cancelled)
   has its reservation refunded — a denied call costs nothing. Rate tokens and loop entries are
   not given back: they count attempts, not consumption.

The call's cost goes into the audit event (`extra.cost`, 0 when nothing was charged), which is
what `mcpwarden usage` reports. Crossing 80 % of a budget writes a warning log line and
`extra.quota_alerts` on that call's audit event, once per budget and period across all
replicas (the backend records that the alert was written).

Backend failures fail closed: a guard that raises denies (`guard-failed`). Only settling after a
successful call is forgiving: the answer is already there, so an error is logged and the lease
expires by itself (`lease_seconds`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import anyio

from mcpwarden import reasons
from mcpwarden.audit.events import digest_arguments
from mcpwarden.catalog import CatalogView
from mcpwarden.config import LimitRule, Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, deny
from mcpwarden.guards.tasks import TASK_TOOL_KEY
from mcpwarden.pipeline import BaseGuard
from mcpwarden.quota.backend import (
    BudgetAlert,
    CounterBackend,
    Refusal,
    Settlement,
    SqliteCounters,
    quota_db_path,
)
from mcpwarden.quota.plan import METERED_METHODS, Admission, CompiledRule, QuotaRules
from mcpwarden.quota.truncate import cap_result, json_size

logger = logging.getLogger(__name__)

LEASE_GRACE_SECONDS: Final = 60.0  # a lease outlives the upstream timeout by this much
_TICKET: Final = "quota.ticket"
# The admission of a call no limit matches: it checks nothing, and its settlement is always empty.
_UNLIMITED: Final = Admission()

BackendFactory = Callable[[], CounterBackend]


@dataclass(slots=True)
class _Ticket:
    """What an admitted call holds until it is settled."""

    admission: Admission
    rules: tuple[CompiledRule, ...]
    cost_per_kb: float
    settled: bool = False

    def settlement(self, delta: float) -> Settlement:
        return Settlement(
            lease_id=self.admission.lease_id,
            leases=tuple(slot.key for slot in self.admission.concurrency),
            budgets=self.admission.budgets,
            delta=delta,
        )


class QuotaGuard(BaseGuard):
    name = "quota"

    def __init__(
        self,
        limits: Sequence[LimitRule],
        backend: BackendFactory,
        *,
        lease_seconds: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = QuotaRules(limits)
        self._make_backend = backend
        self._backend: CounterBackend | None = None
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._pending: list[Settlement] = []  # settlements finish() could not start (no asyncio loop)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> QuotaGuard:
        quota = settings.quota

        def backend() -> CounterBackend:
            if quota.backend == "redis":
                from mcpwarden.quota.redis import RedisCounters

                assert quota.redis_url is not None  # validated by QuotaSettings
                return RedisCounters(quota.redis_url, key_prefix=quota.key_prefix, timeout=quota.timeout)
            return SqliteCounters(quota_db_path(settings.state_dir), timeout=quota.timeout)

        # Always on, even without limits: every metered call's cost goes into the audit trail.
        return cls(
            settings.limits, backend, lease_seconds=settings.gateway.request_timeout + LEASE_GRACE_SECONDS
        )

    @property
    def backend(self) -> CounterBackend:
        """The counter backend, opened on first use (inside the running event loop)."""
        if self._backend is None:
            self._backend = self._make_backend()
        return self._backend

    async def aclose(self) -> None:
        """Wait (bounded) for settlements still running, then close the backend."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        await self._drain_pending()
        if self._backend is not None:
            await self._backend.aclose()
            self._backend = None

    # -- the pipeline's hooks ----------------------------------------------------------------------

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.method not in METERED_METHODS or exchange.exposed_name is None:
            return ALLOW
        if self._pending:
            await self._drain_pending()
        audit = exchange.metadata.setdefault("audit", {})
        audit["cost"] = 0.0
        rules = tuple(self.rules.matching(exchange.identity, exchange.exposed_name))
        if not rules:  # nothing to count, cap or charge: only the audit trail's default cost
            exchange.metadata[_TICKET] = _Ticket(_UNLIMITED, (), 0.0)
            return ALLOW
        cost, cost_per_kb = QuotaRules.call_cost(rules)
        # Hashing large arguments is not free: only loop breakers need the digest.
        looped = any(rule.rule.loop is not None for rule in rules)
        admission = QuotaRules.plan(
            rules,
            exchange.identity,
            exchange.exposed_name,
            digest_arguments(exchange.arguments) if looped else None,
            now=self._clock(),
            cost=cost,
            lease_id=exchange.correlation_id,
            lease_seconds=self._lease_seconds,
        )
        if not admission.empty:
            # Shielded (and bounded by the backend's timeout): a cancelled client must not leave an
            # admission committed in the backend without the ticket that settles it.
            with anyio.CancelScope(shield=True):
                outcome = await self.backend.admit(admission)
            if outcome.refusal is not None:
                return self._refuse(outcome.refusal, admission)
            self._record_alerts(exchange, outcome.alerts)
        exchange.metadata[_TICKET] = _Ticket(admission, rules, cost_per_kb)
        return ALLOW

    async def check_response(self, exchange: Exchange) -> Decision:
        if exchange.method in ("tasks/get", "tasks/result"):
            return await self._settle_task_result(exchange)
        ticket: _Ticket | None = exchange.metadata.get(_TICKET)
        if ticket is None or ticket.settled:
            return ALLOW
        returned = exchange.response_bytes  # what the upstream sent, before any capping
        decision = self._cap_result(exchange, ticket.rules)
        ticket.settled = True
        per_kb = ticket.cost_per_kb * returned / 1024
        exchange.metadata.setdefault("audit", {})["cost"] = _units(ticket.admission.cost + per_kb)
        await self._settle_now(
            exchange, ticket.settlement(per_kb), f"settlement (lease expires in {self._lease_seconds:.0f} s)"
        )
        return decision

    async def _settle_now(self, exchange: Exchange, settlement: Settlement, what: str) -> None:
        """Record `settlement` in the backend before the answer goes out. The answer exists, so
        refusing it now would not give anything back: a failure is logged, never raised."""
        if settlement.empty:
            return
        try:
            with anyio.CancelScope(shield=True):
                alerts = await self.backend.settle(settlement)
        except Exception as exc:
            logger.error("quota %s failed [%s]: %s", what, exchange.correlation_id, type(exc).__name__)
        else:
            self._record_alerts(exchange, alerts)

    def finish(self, exchange: Exchange) -> None:
        ticket: _Ticket | None = exchange.metadata.pop(_TICKET, None)
        if ticket is None or ticket.settled:
            return
        ticket.settled = True
        answered = exchange.result is not None  # a later guard refused the answer: it still cost
        exchange.metadata.setdefault("audit", {})["cost"] = _units(ticket.admission.cost if answered else 0.0)
        settlement = ticket.settlement(0.0 if answered else -ticket.admission.cost)
        if not settlement.empty:
            self._settle_later(settlement)

    # -- decisions ---------------------------------------------------------------------------------

    def _refuse(self, refusal: Refusal, admission: Admission) -> Decision:
        if refusal.kind == "budget":
            budget = admission.budgets[refusal.index]
            renews = datetime.fromtimestamp(budget.period_end, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return deny(
                reasons.BUDGET_EXHAUSTED,
                f"budget exhausted: {budget.units:g} cost units per {budget.period} are spent "
                f"(limit {budget.rule + 1}); it renews at {renews}",
                retry_after=_seconds(budget.period_end - self._clock()),
                limit=budget.rule + 1,
            )
        if refusal.kind == "loop":
            loop = admission.loops[refusal.index]
            return deny(
                reasons.LOOP_DETECTED,
                f"loop detected: the same call (tool and arguments) was made {loop.repeats} times "
                f"within {loop.window:g} s (limit {loop.rule + 1})",
                retry_after=_seconds(refusal.retry_after or 0.0),
                limit=loop.rule + 1,
            )
        if refusal.kind == "concurrency":
            slot = admission.concurrency[refusal.index]
            return deny(
                reasons.TOO_MANY_IN_FLIGHT,
                f"busy: {slot.limit} calls are already in flight (limit {slot.rule + 1})",
                limit=slot.rule + 1,
            )
        rate = admission.rates[refusal.index]
        return deny(
            reasons.RATE_LIMITED,
            f"rate limited: at most {self.rules.rules[rate.rule].rule.rate} calls (limit {rate.rule + 1})",
            retry_after=_seconds(refusal.retry_after or 0.0),
            limit=rate.rule + 1,
        )

    async def _settle_task_result(self, exchange: Exchange) -> Decision:
        """A task's result arrives later, inlined in `tasks/get` (or as the whole answer of a legacy
        session's `tasks/result`): it is held to the `max_result_kb` of the tool that created the
        task and charged that tool's cost per KB, as that tool's in-line answer would be. (The call
        was admitted and charged its cost when it created the task; polling is not metered.)"""
        tool = exchange.metadata.get(TASK_TOOL_KEY)
        answer = exchange.result
        inlined = (
            answer.get("result") if isinstance(answer, dict) and exchange.method == "tasks/get" else answer
        )
        if not isinstance(tool, str) or not isinstance(inlined, dict):
            return ALLOW
        rules = tuple(self.rules.matching(exchange.identity, tool))
        _, cost_per_kb = QuotaRules.call_cost(rules)
        if not cost_per_kb and all(rule.rule.max_result_kb is None for rule in rules):
            return ALLOW
        size = json_size(inlined)
        decision, capped = self._cap(exchange, rules, inlined, size)
        if capped is not None:
            exchange.response_bytes -= size - capped
        if cost_per_kb:
            # What the upstream sent, before any capping, as for a call answered in line; without
            # this a tool run as a task would escape every budget it spends per KB.
            await self._charge(exchange, rules, tool, cost_per_kb * size / 1024)
        return decision

    async def _charge(
        self, exchange: Exchange, rules: Sequence[CompiledRule], tool: str, cost: float
    ) -> None:
        """Add `cost` to every budget the rules keep for this principal and tool (no admission: the
        answer is already there, so only a failure to record it is logged). The audit event names
        the tool, so `mcpwarden usage` adds the charge to that tool's calls."""
        audit = exchange.metadata.setdefault("audit", {})
        audit["cost"], audit[TASK_TOOL_KEY] = _units(cost), tool
        budgets = QuotaRules.plan(
            rules,
            exchange.identity,
            tool,
            None,
            now=self._clock(),
            cost=0.0,
            lease_id=exchange.correlation_id,
            lease_seconds=self._lease_seconds,
        ).budgets
        settlement = Settlement(lease_id=exchange.correlation_id, budgets=budgets, delta=cost)
        await self._settle_now(exchange, settlement, "charge")

    def _cap_result(self, exchange: Exchange, rules: Sequence[CompiledRule]) -> Decision:
        result = exchange.result if isinstance(exchange.result, dict) else None
        decision, capped = self._cap(exchange, rules, result, exchange.response_bytes)
        if capped is not None:
            exchange.response_bytes = capped
        return decision

    def _cap(
        self,
        exchange: Exchange,
        rules: Sequence[CompiledRule],
        result: dict[str, Any] | None,
        size: int,
    ) -> tuple[Decision, int | None]:
        """Hold `result` (of `size` bytes) to the smallest `max_result_kb` it is over: refused, or
        shortened in place (the new size is returned) where every such rule says truncate."""
        over = [
            rule.rule
            for rule in rules
            if rule.rule.max_result_kb is not None and size > rule.rule.max_result_kb * 1024
        ]
        if not over:
            return ALLOW, None
        limit_kb = min(rule.max_result_kb or 0 for rule in over)
        refused = deny(
            reasons.RESULT_TOO_LARGE,
            f"result of {size} bytes is over the {limit_kb} KB limit",
            limit_kb=limit_kb,
        )
        if any(rule.on_large_result == "deny" for rule in over) or result is None:
            return refused, None
        capped = cap_result(result, limit_kb * 1024, size)
        if capped is None:
            return refused, None  # nothing left to shorten (binary content): refuse rather than pass it
        exchange.metadata.setdefault("audit", {})["truncated"] = {"from_bytes": size, "to_bytes": capped}
        return ALLOW, capped

    def _record_alerts(self, exchange: Exchange, alerts: Sequence[BudgetAlert]) -> None:
        if not alerts:
            return
        recorded: list[dict[str, Any]] = exchange.metadata.setdefault("audit", {}).setdefault(
            "quota_alerts", []
        )
        for alert in alerts:
            check = alert.check
            rule = self.rules.rules[check.rule].rule
            whose = exchange.principal if rule.scope == "principal" else "all callers"
            logger.warning(
                "budget alert: %s spent %.6g of %.6g cost units per %s (limit %d, %d%%) [%s]",
                whose,
                alert.used,
                check.units,
                check.period,
                check.rule + 1,
                math.floor(100 * alert.used / check.units),
                exchange.correlation_id,
            )
            recorded.append(
                {
                    "limit": check.rule + 1,
                    "scope": rule.scope,
                    "per": check.period,
                    "used": _units(alert.used),
                    "units": check.units,
                }
            )

    # -- settling outside a request ------------------------------------------------------------------

    def _settle_later(self, settlement: Settlement) -> None:
        # finish() is synchronous; the settlement runs as its own task so the exchange ends now.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._pending.append(settlement)  # not on asyncio: the next admission settles it
            return
        task = loop.create_task(self._settle_quietly(settlement))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_pending(self) -> None:
        pending, self._pending = self._pending, []
        for settlement in pending:
            await self._settle_quietly(settlement)

    async def _settle_quietly(self, settlement: Settlement) -> None:
        try:
            await self.backend.settle(settlement)
        except Exception as exc:
            logger.error(
                "quota settlement failed: %s (lease expires in %.0f s)",
                type(exc).__name__,
                self._lease_seconds,
            )


def _seconds(value: float) -> float:
    """retry_after as clients get it: seconds, rounded up to the millisecond, at least 1 ms."""
    return max(0.001, math.ceil(value * 1000) / 1000)


def _units(value: float) -> float:
    return round(value, 6)
